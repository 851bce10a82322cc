"""A judge's answer restricted to its choices (Yes or No) where the backend can: an
OpenAI-compatible vLLM server by ``guided_choice``, checked against the fake server, which answers
only a listed choice when given them. Backends that cannot keep answering freely and parsed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lookups import ClassifyRequest, LLMRequest, TestPrompt
from services.classify import classify
from services.llm.client import LLMClient
from services.llm.registry import create_backend, get_scorer, get_template, list_backends

HEAD = ClassifyRequest(explanation="Active on directions.", token=" right",
                       prompts=[TestPrompt(text="Turn", active=True), TestPrompt(text="The law", active=False)])


def judge(settings, url: str, **options) -> LLMClient:
    return LLMClient(create_backend(f"openai-compatible:{url}:judge", options), settings=settings)


def test_a_guided_choice_server_always_answers_yes_or_no(settings, fake_server):
    fake_server.respond = lambda prompt: "The head"
    head = classify(judge(settings, fake_server.url, guided_choice=True), get_scorer("zero-shot"),
                    get_template("neo2024"), HEAD)

    assert [r.answer for r in head.results] == ["yes", "yes"]  # the fake's first choice
    assert [r["body"]["guided_choice"] for r in fake_server.requests] == [["Yes", "No"]] * 2
    assert all(r.p_yes is not None for r in head.results)


def test_without_guided_choice_answers_are_free_and_parsed(settings, fake_server):
    fake_server.respond = lambda prompt: "The head"
    client = judge(settings, fake_server.url)
    head = classify(client, get_scorer("zero-shot"), get_template("neo2024"), HEAD)

    assert not client.backend.constrains_choices
    assert [r.answer for r in head.results] == ["unparseable", "unparseable"]
    assert not any("guided_choice" in r["body"] for r in fake_server.requests)


def test_choices_enter_the_cache_key_only_where_the_backend_constrains(settings, fake_server):
    free, chosen = (LLMRequest(prompt="Is it?", max_tokens=1), LLMRequest(prompt="Is it?", max_tokens=1,
                                                                        choices=("Yes", "No")))
    unconstrained = judge(settings, fake_server.url)
    constrained = judge(settings, fake_server.url, guided_choice=True)

    assert unconstrained.cache_key(free) == unconstrained.cache_key(chosen) == constrained.cache_key(free)
    assert constrained.cache_key(chosen) != constrained.cache_key(free)
    assert constrained.cache_key(chosen) != constrained.cache_key(chosen.model_copy(update={"choices": ("No", "Yes")}))


@pytest.mark.parametrize("choices", [("Yes",), ("Yes", "Yes"), ("Yes", "")])
def test_choices_must_be_two_or_more_distinct_strings(choices):
    with pytest.raises(ValidationError, match="choices"):
        LLMRequest(prompt="Is it?", max_tokens=1, choices=choices)


def test_backends_declare_whether_they_constrain():
    declared = {b.name: b.constrains_choices for b in list_backends()}
    assert declared["local"] is True
    assert declared["openai"] is declared["anthropic"] is declared["openai-compatible"] is False
