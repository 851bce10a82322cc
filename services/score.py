"""Step 8 (docs/method.md): head explanation scores (balanced accuracy), the campaign summary, and the paired
difference between real explanations and the shuffled-explanation control.

Unparseable answers count against the judge in both classes (neither a hit nor a correct
rejection), so they can only lower a score, never pass as "No".
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from lookups import HeadClassification, HeadScore, rank_auc

POWER = 0.8
ALPHA = 0.05


class PairedDifference(BaseModel):
    """Mean over heads of (real score - control score), the same head's test prompts judged with
    its own and with another head's explanation; the interval is a bootstrap over heads.
    ``detectable``: the smallest mean difference a two-sided paired t-test at 5 % finds with 80 %
    power, given these heads' spread of differences (how fine a comparison the test sets allow)."""

    n_pairs: int
    mean: float | None
    ci95: tuple[float, float] | None
    detectable: float | None = None


class ProbeShare(BaseModel):
    """A scorer's margin over its shuffled control as a fraction of the text probe's margin, on
    the heads where the probe beats its own control (where text predicts the head at all)."""

    n_heads: int
    scorer_margin: float | None
    probe_margin: float | None
    fraction: float | None


class SkewTest(BaseModel):
    statistic: float
    pvalue: float


class CampaignSummary(BaseModel):
    n_heads: int
    n_scored: int
    mean: float | None
    sd: float | None
    skew: SkewTest | None  # scipy's skewtest needs at least 8 scores
    ci95: tuple[float, float] | None  # bootstrap percentile interval of the mean; None for one head
    auc: float | None  # pooled over prompts with P(Yes) and a label
    n_with_probability: int
    # The judge's labelled answers, and how many of them were neither Yes nor No: a judge that
    # ignores the answer format scores low for that reason, and the report has to say so.
    n_answers: int = 0
    n_unparseable: int = 0


class ScorerSummary(BaseModel):
    """One scorer over a campaign: real explanations, the shuffled control, their paired
    difference, and the judge calls it took."""

    explanations: CampaignSummary
    control: CampaignSummary
    paired: PairedDifference
    calls: int
    constrained: bool | None = Field(default=None, description="Every judge answer restricted to Yes/No by "
                                     "construction (False: some were parsed from free text); None: no such question.")
    probe_share: ProbeShare | None = Field(default=None, description="Set when the probe scored the same campaign.")


def auc(heads: list[HeadClassification]) -> tuple[float | None, int]:
    """Probability a random active prompt gets a higher P(Yes) than a random inactive one."""
    pairs = [(r.p_yes, r.active) for h in heads for r in h.results
             if r.p_yes is not None and r.active is not None]
    pos = [p for p, label in pairs if label]
    neg = [p for p, label in pairs if not label]
    if not pos or not neg:
        return None, len(pairs)
    return rank_auc(pos, neg), len(pairs)


def bootstrap_ci(values, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile interval of the mean over ``n_boot`` resamples (scipy's bootstrap); None for
    fewer than two values (one value cannot be resampled: there is no interval to give)."""
    import numpy as np
    from scipy.stats import bootstrap

    if len(values) < 2:
        return None
    result = bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=n_boot, method="percentile",
                       rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def summarize(scores: list[HeadScore], heads: list[HeadClassification] | None = None,
              n_boot: int = 10_000, seed: int = 0) -> CampaignSummary:
    import numpy as np
    from scipy.stats import skewtest

    values = np.array([s.score for s in scores if s.score is not None], dtype=float)
    area, n_prob = auc(heads or [])
    answers = {"n_answers": sum(s.tp + s.fn + s.tn + s.fp for s in scores),
               "n_unparseable": sum(s.unparseable for s in scores)}
    if len(values) == 0:
        return CampaignSummary(n_heads=len(scores), n_scored=0, mean=None, sd=None, skew=None,
                               ci95=None, auc=area, n_with_probability=n_prob, **answers)
    skew = None
    if len(values) >= 8:
        result = skewtest(values)
        skew = SkewTest(statistic=float(result.statistic), pvalue=float(result.pvalue))
    return CampaignSummary(
        n_heads=len(scores), n_scored=len(values), mean=float(values.mean()),
        sd=float(values.std(ddof=1)) if len(values) > 1 else None, skew=skew,
        ci95=bootstrap_ci(values, n_boot, seed), auc=area,
        n_with_probability=n_prob, **answers,
    )


Pair = tuple[HeadScore | None, HeadScore | None]  # a head's (real, control) scores; None: not scored


def paired_difference(pairs: list[Pair], n_boot: int = 10_000, seed: int = 0) -> PairedDifference:
    """(real, control) score pairs of the same heads; pairs with a missing or skipped side are left out."""
    diffs = [d for d in (margin(*pair) for pair in pairs) if d is not None]
    if not diffs:
        return PairedDifference(n_pairs=0, mean=None, ci95=None)
    return PairedDifference(n_pairs=len(diffs), mean=sum(diffs) / len(diffs),
                            ci95=bootstrap_ci(diffs, n_boot, seed),
                            detectable=detectable_difference(diffs))


def detectable_difference(diffs: list[float], power: float = POWER, alpha: float = ALPHA) -> float | None:
    """The smallest true mean difference a two-sided one-sample t-test on ``diffs`` detects with
    ``power``, taking their standard deviation as the truth (noncentral t); None for fewer than
    two differences or no spread."""
    import numpy as np
    from scipy.optimize import brentq
    from scipy.stats import nct, t

    n = len(diffs)
    sd = float(np.std(diffs, ddof=1)) if n > 1 else 0.0
    if n < 2 or sd < 1e-12:  # equal differences (up to rounding) have no spread to power a test with
        return None
    df, critical = n - 1, float(t.ppf(1 - alpha / 2, n - 1))

    def shortfall(effect: float) -> float:
        shift = effect * np.sqrt(n) / sd
        lower = float(np.nan_to_num(nct.cdf(-critical, df, shift)))  # the far tail: NaN when negligible
        return float(nct.sf(critical, df, shift)) + lower - power

    # power exceeds 80 % well before the shift reaches critical + 3 (the t tail is wider than normal)
    return float(brentq(shortfall, 0.0, (critical + 3 * (1 + 10 / df)) * sd / np.sqrt(n)))


def head_interval(score: HeadScore, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile interval of a head's balanced accuracy, resampling its active and its
    inactive test prompts separately (scipy's bootstrap); None for a skipped head and for one with
    a single prompt in a class (that class cannot be resampled: there is no interval to give)."""
    import numpy as np
    from scipy.stats import bootstrap

    if score.score is None or min(score.n_active, score.n_inactive) < 2:
        return None
    hits = np.array([1.0] * score.tp + [0.0] * score.fn)
    rejections = np.array([1.0] * score.tn + [0.0] * score.fp)
    result = bootstrap((hits, rejections), lambda a, b, axis: 0.5 * (a.mean(axis=axis) + b.mean(axis=axis)),
                       n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def margin(real: HeadScore | None, control: HeadScore | None) -> float | None:
    if real is None or control is None or real.score is None or control.score is None:
        return None
    return real.score - control.score


def probe_share(scorer: list[Pair], probe: list[Pair]) -> ProbeShare:
    """(real, control) scores of a scorer and of the probe, one pair per head in the same order
    (None where a head has no such score)."""
    margins = [(margin(*own), margin(*ceiling)) for own, ceiling in zip(scorer, probe, strict=True)]
    kept = [(own, ceiling) for own, ceiling in margins if own is not None and ceiling is not None and ceiling > 0]
    if not kept:
        return ProbeShare(n_heads=0, scorer_margin=None, probe_margin=None, fraction=None)
    own = sum(m for m, _ in kept) / len(kept)
    ceiling = sum(p for _, p in kept) / len(kept)
    return ProbeShare(n_heads=len(kept), scorer_margin=own, probe_margin=ceiling, fraction=own / ceiling)


