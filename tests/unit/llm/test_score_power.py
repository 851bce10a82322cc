"""What a campaign's scores can show: the interval of its mean score, the detectable paired
difference (80 % power), each head's interval over its test prompts, and a scorer's share of the
probe's margin."""

from __future__ import annotations

import numpy as np
import pytest

from lookups import HeadScore
from services.score import bootstrap_ci, detectable_difference, head_interval, paired_difference, probe_share, summarize


def score(value: float | None, tp=0, fn=0, tn=0, fp=0) -> HeadScore:
    return HeadScore(neuron=None, head=None, score=value, tp=tp, fn=fn, tn=tn, fp=fp, unparseable=0)


def test_the_campaign_interval_holds_the_true_mean_about_95_percent_of_the_time():
    """Heads' scores drawn from a known distribution: the percentile interval of their mean covers
    the true mean in about 95 % of campaigns (a little less: the percentile bootstrap is a bit
    narrow), where a 90 % interval covers it in about 89 % and a 99 % one in 98.5 %."""
    rng = np.random.default_rng(0)
    intervals = [bootstrap_ci(list(rng.normal(0.3, 0.1, 100)), n_boot=1000, seed=seed) for seed in range(2000)]
    covered = [low <= 0.3 <= high for low, high in intervals]  # type: ignore[misc]
    assert 0.925 <= np.mean(covered) <= 0.97


def test_the_campaign_interval_of_two_values_spans_them_and_one_value_has_none():
    # The resampled means of (0.5, 0.7) are 0.5, 0.6 and 0.7 with chances 1/4, 1/2, 1/4.
    assert bootstrap_ci([0.5, 0.7]) == pytest.approx((0.5, 0.7))
    assert bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3))  # no spread: no width
    assert bootstrap_ci([0.3]) is None


def test_a_true_difference_of_the_detectable_size_is_found_about_80_percent_of_the_time():
    from scipy.stats import ttest_1samp

    rng = np.random.default_rng(0)
    n = 24
    diffs = rng.normal(0, 0.15, n)
    sd = float(np.std(diffs, ddof=1))  # the spread the campaign observed, taken as the truth
    detectable = detectable_difference(list(diffs))
    assert detectable is not None and 0.05 < detectable < 0.15
    found = [ttest_1samp(rng.normal(detectable, sd, n), 0).pvalue < 0.05 for _ in range(4000)]
    assert np.mean(found) == pytest.approx(0.8, abs=0.03)


def test_more_heads_detect_smaller_differences_and_one_head_detects_nothing():
    rng = np.random.default_rng(1)
    diffs = list(rng.normal(0.0, 0.2, 400))
    assert detectable_difference(diffs[:100]) > detectable_difference(diffs)  # type: ignore[operator]
    assert detectable_difference(diffs[:1]) is None and detectable_difference([0.1, 0.1, 0.1]) is None
    one = paired_difference([(score(0.7), score(0.5))])
    assert one.n_pairs == 1 and one.ci95 is None and one.detectable is None  # no zero-width "95 % CI"
    assert summarize([score(0.7)]).ci95 is None


def test_a_heads_interval_holds_its_score_and_narrows_with_more_test_prompts():
    small = head_interval(score(0.7, tp=4, fn=1, tn=3, fp=2))
    large = head_interval(score(0.7, tp=40, fn=10, tn=30, fp=20))
    assert small is not None and large is not None
    assert small[0] <= 0.7 <= small[1] and large[0] <= 0.7 <= large[1]
    assert large[1] - large[0] < small[1] - small[0]
    assert head_interval(score(None)) is None
    assert head_interval(score(0.75, tp=1, fn=0, tn=1, fp=1)) is None  # one active prompt: nothing to resample


def test_the_probe_share_counts_only_heads_the_probe_predicts():
    scorer = [(score(0.7), score(0.5)), (score(0.6), score(0.5)), (score(0.9), score(0.5)), (score(None), None)]
    probe = [(score(0.9), score(0.5)), (score(0.7), score(0.5)), (score(0.5), score(0.6)), (score(0.8), score(0.5))]
    share = probe_share(scorer, probe)
    # heads 0 and 1: scorer margins 0.2, 0.1; probe margins 0.4, 0.2; head 2's probe margin is negative
    assert share.n_heads == 2
    assert share.fraction == pytest.approx(0.15 / 0.3)
    assert probe_share(scorer[2:3], probe[2:3]).fraction is None
