"""The ``probe`` scorer, the text-probe ceiling: a classifier trained on the explainer's own
training prompts and labels, scored on held-out prompts like any scorer, with no judge call."""

from __future__ import annotations

import random

from lookups import ClassifyRequest, TestPrompt
from services.classify import classify
from services.llm.registry import get_scorer, get_template, list_scorers

WORDS = "the a river stone under over quiet bright garden window paper music winter city".split()


def prompt(rng: random.Random, last: str) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + f" {last}"


def head(rng: random.Random, trigger: str, n: int) -> list[TestPrompt]:
    """Active exactly when the prompt ends on ``trigger`` (the other ends vary)."""
    others = ["lamp", "door", "field", "cloud", "road"]
    return [TestPrompt(text=prompt(rng, trigger if i % 2 == 0 else rng.choice(others)), active=i % 2 == 0)
            for i in range(n)]


def test_probe_learns_a_text_rule_from_training_prompts_with_no_judge_call(openai_client, fake_server):
    rng = random.Random(0)
    scorer, client = get_scorer("probe"), openai_client()
    assert "probe" in [s.name for s in list_scorers()]
    zebra = ClassifyRequest(explanation="(any)", token=" x", train=head(rng, "zebra", 20),
                            prompts=head(rng, "zebra", 30))
    otter = ClassifyRequest(explanation="(any)", token=" x", train=head(rng, "otter", 20),
                            prompts=head(rng, "otter", 30))

    real = scorer.score(classify(client, scorer, get_template("neo2024"), zebra))
    shuffled = scorer.score(classify(client, scorer, get_template("neo2024"),
                                     zebra.model_copy(update={"train": otter.train})))

    assert real.score is not None and real.score >= 0.9
    assert shuffled.score is not None and abs(shuffled.score - 0.5) <= 0.1  # another head's probe: chance
    assert fake_server.requests == []  # no LLM


def test_a_probe_with_one_class_of_training_labels_is_skipped_with_the_reason(openai_client):
    rng = random.Random(1)
    scorer = get_scorer("probe")
    one_class = ClassifyRequest(explanation="(any)", token=" x", prompts=head(rng, "zebra", 6),
                                train=[TestPrompt(text=prompt(rng, "zebra"), active=True) for _ in range(5)])
    classified = classify(openai_client(), scorer, get_template("neo2024"), one_class)
    score = scorer.score(classified)
    assert score.score is None and score.skipped == "the probe's training labels are all one class"
    assert score.unparseable == 0 and classified.calls == []
    untrained = scorer.score(classify(openai_client(), scorer, get_template("neo2024"),
                                      one_class.model_copy(update={"train": None})))
    assert untrained.score is None and "training prompts" in (untrained.skipped or "")
