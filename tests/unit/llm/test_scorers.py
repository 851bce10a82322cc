"""Scorer plugins against the fake OpenAI server: zero-shot, detection and logprob-auc judge the
same test prompts; detection with far fewer calls; unparseable answers never count as No."""

from __future__ import annotations

import re

import pytest

from lookups import Classification, ClassifyRequest, HeadClassification, TestPrompt, UnknownPluginError
from plugins.scorers.detection import read_numbers
from services.campaigns.stages.classify import derangement
from services.classify import classify
from services.llm.registry import get_scorer, get_template, list_scorers

TOPICS = ["apples", "boats", "clocks", "drums"]


def perfect_judge(prompt: str) -> str:
    """Yes iff the example is about the explained topic; for detection, the numbers of those."""
    if "numbered examples" in prompt:
        explanation, rest = prompt.split("Above is an explanation", 1)
        examples = re.findall(r'Example (\d+): """\n(.*?)\n"""', rest, re.S)
        named = [n for n, text in examples if any(t in explanation and t in text for t in TOPICS)]
        return ", ".join(named) or "none"
    explanation, example = prompt.split("Example:")
    return "Yes" if any(t in explanation and t in example for t in TOPICS) else "No"


def head_requests() -> list[ClassifyRequest]:
    """Four heads, each with 3 prompts on its topic (active) and 3 on none (inactive)."""
    return [ClassifyRequest(head=f"0.{i}", explanation=f"Fires on {topic}.", token=" x", prompts=[
        *(TestPrompt(text=f"story {k} all about {topic}", active=True) for k in range(3)),
        *(TestPrompt(text=f"story {k} about nothing", active=False) for k in range(3))])
        for i, topic in enumerate(TOPICS)]


@pytest.mark.parametrize("name", ["zero-shot", "detection"])
def test_real_explanations_score_perfectly_and_shuffled_ones_at_chance(name, openai_client, fake_server):
    fake_server.respond = perfect_judge
    scorer, template, client = get_scorer(name), get_template("neo2024"), openai_client()
    requests = head_requests()
    donors = derangement(len(requests), seed=3)

    real = [scorer.score(classify(client, scorer, template, r)).score for r in requests]
    control = [scorer.score(classify(client, scorer, template, r.model_copy(
        update={"explanation": requests[d].explanation}))).score for r, d in zip(requests, donors)]

    assert real == [1.0] * 4
    assert control == [0.5] * 4  # another head's topic: never Yes on an active prompt


def test_detection_takes_one_call_per_group_for_the_same_labels(openai_client, fake_server):
    fake_server.respond = perfect_judge
    template, client = get_template("neo2024"), openai_client()
    request = head_requests()[0]

    zero_shot = classify(client, get_scorer("zero-shot"), template, request)
    calls_before = len(fake_server.requests)
    detection = classify(client, get_scorer("detection"), template, request)

    assert len(fake_server.requests) - calls_before == len(detection.calls) == 1
    assert len(zero_shot.calls) == len(request.prompts) == 6
    assert [r.answer for r in detection.results] == [r.answer for r in zero_shot.results]
    assert detection.scorer == "detection" and detection.scorer_version


@pytest.mark.parametrize("answer", ["I think these are fine", "", "1, 9"])
def test_detection_answers_naming_no_valid_example_are_unparseable(answer, openai_client, fake_server):
    fake_server.respond = lambda prompt: answer
    scorer = get_scorer("detection")
    result = classify(openai_client(), scorer, get_template("neo2024"), head_requests()[0])
    score = scorer.score(result)

    assert {r.answer for r in result.results} == {"unparseable"}
    assert score.unparseable == 6 and score.score == 0.0  # as "No" they would have scored 0.5


@pytest.mark.parametrize(("text", "n", "expected"), [
    ("1, 3", 5, {1, 3}), ("none", 5, set()), ("None of them.", 5, set()),
    ("Examples 2 and 4.\n1 is not", 5, {2, 4}), ("", 5, None), ("7", 5, None), ("no idea", 5, None),
])
def test_read_numbers(text, n, expected):
    assert read_numbers(text, n) == expected


def classified(labels_p_yes, effects=None) -> HeadClassification:
    effects = effects or [None] * len(labels_p_yes)
    return HeadClassification(
        neuron="1:2", head="0.0", explanation="e", template="t", template_version="v", backend="b",
        model="m", calls=[], results=[
            Classification(prompt=f"p{i}", active=label, answer="yes" if (p or 0) > 0.5 else "no",
                           p_yes=p, raw="", effect=effect)
            for i, ((label, p), effect) in enumerate(zip(labels_p_yes, effects))])


def test_causal_ranks_ablation_effects_by_the_judges_predictions():
    scorer = get_scorer("causal")
    # predicted active (p_yes > 0.5) on the prompts where ablating the head hurts the neuron most
    aligned = classified([(True, 0.9), (False, 0.8), (True, 0.2), (False, 0.1)], effects=[2.0, 1.5, 0.3, 0.1])
    assert scorer.score(aligned).score == 1.0
    crossed = classified([(True, 0.9), (False, 0.8), (True, 0.2), (False, 0.1)], effects=[0.1, 0.3, 1.5, 2.0])
    assert scorer.score(crossed).score == 0.0
    one_sided = scorer.score(classified([(True, 0.9), (False, 0.8)], effects=[1.0, 0.5]))
    assert one_sided.score is None and "one class" in one_sided.skipped
    unmeasured = scorer.score(classified([(True, 0.9), (False, 0.1)]))
    assert unmeasured.score is None and "ablation effects" in unmeasured.skipped


def test_logprob_auc_ranks_prompts_by_p_yes_without_a_threshold():
    scorer = get_scorer("logprob-auc")
    # every answer is "No" (p_yes < 0.5), so balanced accuracy is 0.5, yet the ranking is perfect
    ranked = classified([(True, 0.4), (True, 0.3), (False, 0.2), (False, 0.1)])
    assert get_scorer("zero-shot").score(ranked).score == 0.5
    assert scorer.score(ranked).score == 1.0
    half = classified([(True, 0.4), (True, 0.1), (False, 0.3), (False, 0.2)])
    assert scorer.score(half).score == pytest.approx(0.5)
    missing = scorer.score(classified([(True, None), (False, 0.2)]))
    assert missing.score is None and "logprobs" in missing.skipped


def test_unknown_scorer_names_the_installed_ones():
    with pytest.raises(UnknownPluginError) as error:
        get_scorer("nosuch")
    installed = {s.name for s in list_scorers()}
    assert {"zero-shot", "detection", "logprob-auc", "causal"} <= installed
    assert all(name in str(error.value) for name in installed)
