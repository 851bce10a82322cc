"""Head scores (balanced accuracy), the campaign summary and the shuffled control's permutation."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from lookups import CallRecord, Classification, HeadClassification, head_score
from plugins.scorers.zero_shot import p_yes, parse_answer
from services.campaigns.stages.classify import derangement
from services.score import paired_difference, summarize

CALL = CallRecord(at=datetime(2024, 1, 1), backend="b", model="m", purpose="classify",
                  template_version="v", cache_key="k", cache_hit=False, input_tokens=1,
                  output_tokens=1, latency_s=0.1, cost_usd=0.0, attempts=1)


def head(labels_answers, probabilities=None, name="0.0") -> HeadClassification:
    probabilities = probabilities or [None] * len(labels_answers)
    return HeadClassification(
        neuron="1:2", head=name, explanation="e", template="t", template_version="v", backend="b",
        model="m", results=[Classification(prompt=f"p{i}", active=label, answer=answer, p_yes=p,
                                           raw=answer)
                            for i, ((label, answer), p) in enumerate(zip(labels_answers, probabilities))],
        calls=[CALL] * len(labels_answers))


@pytest.mark.parametrize(("text", "answer"), [
    ("Yes", "yes"), (" no", "no"), ("YES.", "yes"), ("No, because", "no"),
    ("", "unparseable"), ("Nope", "unparseable"), ("Maybe", "unparseable"), ("Yesterday", "unparseable"),
])
def test_parse_answer(text, answer):
    assert parse_answer(text) == answer


def test_p_yes_normalises_over_yes_and_no_spellings():
    logprobs = {"Yes": np.log(0.3), " yes": np.log(0.1), "No": np.log(0.2), "The": np.log(0.4)}
    assert p_yes(logprobs) == pytest.approx(0.4 / 0.6)
    assert p_yes({"The": 0.0}) is None and p_yes(None) is None


def test_balanced_accuracy_weights_classes_equally():
    # 3 active (2 said yes), 1 inactive (said no): 0.5 * (2/3 + 1/1)
    score = head_score(head([(True, "yes"), (True, "yes"), (True, "no"), (False, "no")]))
    assert score.score == pytest.approx(0.5 * (2 / 3 + 1))
    assert (score.tp, score.fn, score.tn, score.fp) == (2, 1, 1, 0)


def test_single_class_heads_are_skipped():
    score = head_score(head([(True, "yes"), (True, "no")]))
    assert score.score is None and "one class" in score.skipped


def test_summary_statistics():
    rng = np.random.default_rng(1)
    values = rng.uniform(0.3, 1.0, size=12)
    scores = [head_score(head([(True, "yes"), (False, "no")])).model_copy(update={"score": v})
              for v in values]
    summary = summarize(scores, n_boot=2000)

    assert summary.mean == pytest.approx(values.mean())
    assert summary.sd == pytest.approx(values.std(ddof=1))
    low, high = summary.ci95
    assert low < values.mean() < high and high - low < 4 * values.std(ddof=1) / np.sqrt(12)
    assert summary.skew is not None and 0 <= summary.skew.pvalue <= 1
    assert summarize(scores[:5]).skew is None  # too few for a skew test


def test_summary_counts_the_judges_unparseable_answers():
    rambling = head([(True, "unparseable"), (False, "unparseable"), (True, "yes"), (False, "no")])
    clean = head([(True, "yes"), (False, "yes")], name="0.1")
    summary = summarize([head_score(rambling), head_score(clean)], n_boot=100)
    assert (summary.n_answers, summary.n_unparseable) == (6, 2)
    # Unparseable answers count against the judge in both classes, never as No.
    assert head_score(rambling).score == pytest.approx(0.5 * (1 / 2 + 1 / 2))


def test_auc_from_probabilities():
    separated = head([(True, "yes"), (True, "yes"), (False, "no"), (False, "no")], [0.9, 0.8, 0.2, 0.1])
    reversed_ = head([(True, "yes"), (False, "no")], [0.1, 0.9], name="0.1")
    assert summarize([head_score(separated)], [separated]).auc == pytest.approx(1.0)
    # pooled over both heads: the fraction of (active, inactive) pairs ordered correctly, ties half
    pos, neg = [0.9, 0.8, 0.1], [0.2, 0.1, 0.9]
    expected = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / 9
    both = summarize([head_score(separated), head_score(reversed_)], [separated, reversed_])
    assert both.auc == pytest.approx(expected) and both.n_with_probability == 6


@pytest.mark.parametrize("n", range(2, 12))
def test_derangement_gives_every_head_another_heads_explanation(n):
    donors = derangement(n, seed=n)
    assert sorted(donors) == list(range(n))
    assert all(d != i for i, d in enumerate(donors))


def test_paired_difference_pairs_each_head_with_its_own_control():
    perfect = head_score(head([(True, "yes"), (False, "no")]))  # 1.0
    chance = head_score(head([(True, "yes"), (False, "yes")]))  # 0.5
    skipped = head_score(head([(True, "yes")]))  # one class: no score
    paired = paired_difference([(perfect, chance), (perfect, chance), (chance, chance), (skipped, chance)],
                               n_boot=500)
    assert paired.n_pairs == 3 and paired.mean == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    low, high = paired.ci95
    assert 0.0 <= low <= paired.mean <= high <= 0.5
    assert paired_difference([(skipped, chance)]).mean is None
