"""Programs as explanations in a real campaign (tiny model, real store, the fake OpenAI server as
explainer and judge): best of k on the training prompts, the program scorer with no judge call
and another head's program as the control, the agent revising from the prompts its program gets
wrong, and the program in the results, the report and the export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI  # noqa: E402

from plugins.explainers.program import parse_program  # noqa: E402
from services.campaigns.execute import run_in_process  # noqa: E402
from services.campaigns.lifecycle import create_campaign  # noqa: E402
from services.store.models import AgentRoundRow, ClassificationRow, ExplanationRow  # noqa: E402
from tests.conftest import tiny_campaign  # noqa: E402

ALWAYS = "EXPLANATION: Always on.\n```python\ndef active(text, tokens):\n    return True\n```"
RAISES = "EXPLANATION: Breaks.\n```python\ndef active(text, tokens):\n    return tokens[10**6] == ''\n```"
PROSE = "It is active after lists, I think."
LONG = "EXPLANATION: Long prompts.\n```python\ndef active(text, tokens):\n    return len(tokens) > 20\n```"


def test_parse_program_reads_a_fenced_block_bare_code_or_says_why_there_is_none():
    assert parse_program(ALWAYS) == ("Always on.", "def active(text, tokens):\n    return True", None)
    bare = "EXPLANATION: x\nimport re\ndef active(text, tokens):\n    return False"
    assert parse_program(bare)[1] == "import re\ndef active(text, tokens):\n    return False"
    sentence, source, error = parse_program(PROSE)
    assert sentence == PROSE and source is None and "no program" in error


def explainer(prompt: str, seed: int) -> str:
    """Sample 0 always says active, 1 writes prose, 2 a program that raises on every prompt."""
    return [ALWAYS, PROSE, RAISES][seed % 3]


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        server.sampled = explainer
        server.respond = lambda prompt: "Yes" if "Answer:" in prompt else LONG
        yield server


def llm_spec(server, tmp_path) -> str:
    return f"openai-compatible:{server.url}:fake-{tmp_path.name}"


@pytest.mark.slow  # runs a whole campaign in-process
def test_best_of_k_keeps_the_best_program_on_training_and_scores_it_without_a_judge(
        store, runtime, fake_llm, tiny_gpt2_dir, corpus_path, tmp_path):
    from services.campaigns.results import campaign_results
    from services.export import export_campaign
    from services.report import render_report

    config = tiny_campaign(tiny_gpt2_dir, corpus_path, llm_spec(fake_llm, tmp_path), explainer_strategy="program",
                           explainer_samples=3, explainer_temperature=0.9, scorers=["program", "zero-shot"],
                           ablation=False).model_copy(update={"top_k": 16, "test_prompts_per_head": 12})
    campaign_id = create_campaign(store, config)
    assert run_in_process(store, campaign_id, runtime).status == "completed"
    with store.session() as session:
        explanations = {r.head_id: r.payload for r in session.scalars(
            select(ExplanationRow).where(ExplanationRow.campaign_id == campaign_id))}
        classified = {(r.head_id, r.scorer, r.control): r.payload
                      for r in session.scalars(select(ClassificationRow).where(
                          ClassificationRow.campaign_id == campaign_id))}
    assert len(explanations) >= 2
    sampled = [r["body"] for r in fake_llm.requests if "seed" in r["body"]]
    assert len(sampled) == 3 * len(explanations)  # k calls per head, each its own cache entry
    assert {(b["seed"], b["temperature"]) for b in sampled} == {(0, 0.9), (1, 0.9), (2, 0.9)}
    for payload in explanations.values():
        program = payload.program
        assert payload.text == "Always on." and program.sample == 0
        assert program.sample_accuracies == [0.5, None, 0.0] or program.sample_accuracies[0] is None
        assert len(payload.calls) == 3
    for (head_id, scorer, control), result in classified.items():
        if scorer != "program":
            continue
        assert result.calls == []  # no judge
        assert {r.answer for r in result.results} == {"yes"}  # ALWAYS, its own or the donor's
    assert any(scorer == "program" and control for _, scorer, control in classified), list(classified)
    heads = [h for n in campaign_results(store, campaign_id).neurons for h in n.heads if h.program]
    assert heads and all(h.program.source == "def active(text, tokens):\n    return True" for h in heads)
    html = render_report(store, campaign_id)
    assert "Program: training balanced accuracy" in html and "<pre" in html and "active" in html
    export_campaign(store, campaign_id, tmp_path / "export", "jsonl")
    rows = [json.loads(line) for line in (tmp_path / "export" / "explanations.jsonl").read_text().splitlines()]
    assert rows and all(r["program"].startswith("def active") for r in rows)


@pytest.mark.slow  # runs a whole campaign in-process
def test_the_program_agent_revises_from_the_training_prompts_its_program_gets_wrong(
        store, runtime, fake_llm, tiny_gpt2_dir, corpus_path, tmp_path):
    fake_llm.respond = lambda prompt: LONG if "Your rule so far" in prompt else ALWAYS
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, llm_spec(fake_llm, tmp_path),
                           explainer_strategy="program-agent", agent_rounds=2, scorers=["program"], ablation=False)
    campaign_id = create_campaign(store, config)
    assert run_in_process(store, campaign_id, runtime).status == "completed"
    with store.session() as session:
        rounds = list(session.scalars(select(AgentRoundRow).where(AgentRoundRow.campaign_id == campaign_id)))
        explanations = [r.payload for r in session.scalars(
            select(ExplanationRow).where(ExplanationRow.campaign_id == campaign_id))]
    assert rounds and all(r.payload.evaluation.train_total > 0 for r in rounds)
    assert all(r.payload.judge_calls == [] for r in rounds)  # the sandbox, not a judge
    revisions = [r["body"]["messages"][-1]["content"] for r in fake_llm.requests
                 if "Your rule so far" in r["body"]["messages"][-1]["content"]]
    assert revisions and "your rule said active" in revisions[0]  # ALWAYS is wrong on inactive ones
    for payload in explanations:
        assert payload.program.source is not None
        assert payload.agent.chosen_round == payload.program.sample
        accuracies = payload.program.sample_accuracies
        kept = accuracies[payload.program.sample]
        assert kept is None or kept == max(a for a in accuracies if a is not None)


def test_an_answer_with_the_code_first_gives_the_explanation_line_after_it():
    answer = "```python\ndef active(text, tokens):\n    return True\n```\nEXPLANATION: After a list."
    assert parse_program(answer) == ("After a list.", "def active(text, tokens):\n    return True", None)
    assert parse_program("```python\ndef active(text, tokens):\n    return True\n```\nIt reads lists.")[0] == \
        "It reads lists."
