"""Step 8 (docs/method.md): head explanation scores (balanced accuracy), the campaign summary, and the paired
difference between real explanations and the shuffled-explanation control.

Unparseable answers count against the judge in both classes (neither a hit nor a correct
rejection), so they can only lower a score, never pass as "No".
"""

from __future__ import annotations

from pydantic import BaseModel

from contract import HeadClassification, HeadScore, rank_auc


class PairedDifference(BaseModel):
    """Mean over heads of (real score - control score), the same head's test prompts judged with
    its own and with another head's explanation; the interval is a bootstrap over heads."""

    n_pairs: int
    mean: float | None
    ci95: tuple[float, float] | None


class SkewTest(BaseModel):
    statistic: float
    pvalue: float


class CampaignSummary(BaseModel):
    n_heads: int
    n_scored: int
    mean: float | None
    sd: float | None
    skew: SkewTest | None  # scipy's skewtest needs at least 8 scores
    ci95: tuple[float, float] | None  # bootstrap percentile interval of the mean
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


def auc(heads: list[HeadClassification]) -> tuple[float | None, int]:
    """Probability a random active prompt gets a higher P(Yes) than a random inactive one."""
    pairs = [(r.p_yes, r.active) for h in heads for r in h.results
             if r.p_yes is not None and r.active is not None]
    pos = [p for p, label in pairs if label]
    neg = [p for p, label in pairs if not label]
    if not pos or not neg:
        return None, len(pairs)
    return rank_auc(pos, neg), len(pairs)


def bootstrap_ci(values, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean over ``n_boot`` resamples."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


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
        ci95=bootstrap_ci(values, n_boot, seed), auc=area, n_with_probability=n_prob, **answers,
    )


def paired_difference(pairs: list[tuple[HeadScore, HeadScore]], n_boot: int = 10_000,
                      seed: int = 0) -> PairedDifference:
    """(real, control) score pairs of the same heads; pairs with a skipped side are left out."""
    diffs = [real.score - control.score for real, control in pairs
             if real.score is not None and control.score is not None]
    if not diffs:
        return PairedDifference(n_pairs=0, mean=None, ci95=None)
    return PairedDifference(n_pairs=len(diffs), mean=sum(diffs) / len(diffs),
                            ci95=bootstrap_ci(diffs, n_boot, seed))


