"""Stage ``score`` (docs/method.md step 8): every scorer's head scores for the real explanations
and the shuffled control, its campaign summary and the paired difference between the two."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lookups import HeadClassification, HeadScore
from services.campaigns.records import StageItem, Writer, campaign_heads, neuron_key
from services.llm.registry import get_scorer
from services.runtime import Runtime
from services.score import Pair, ScorerSummary, head_interval, paired_difference, probe_share, summarize
from services.store import Store
from services.store.models import Campaign, ClassificationRow, ScoreRow, TestSetRow

PROBE = "probe"  # the text-probe ceiling's scorer: every other scorer's margin is also given as its share


def all_constrained(classifications: list[HeadClassification]) -> bool | None:
    """True when every judge answer asked with choices was constrained to them, False when some
    were parsed from free text, None when no question had choices."""
    asked = [c.constrained for c in classifications if c.constrained is not None]
    return all(asked) if asked else None


def plan(session: Session, campaign: Campaign) -> list[str]:
    return ["all"] if campaign_heads(session, campaign.id) else []


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    """Every scorer's head scores (real and control), its summaries and the paired difference;
    the first scorer's also stand as the campaign's headline ``explanations``/``control``."""
    with store.session() as session:
        heads = campaign_heads(session, item.campaign_id)
        classified = {(r.head_id, r.scorer, r.control): r.payload
                      for r in session.scalars(select(ClassificationRow).where(
                          ClassificationRow.campaign_id == item.campaign_id))}
        one_class = set(session.scalars(select(TestSetRow.head_id).where(
            TestSetRow.campaign_id == item.campaign_id, TestSetRow.one_class.is_(True))))
    scores: dict[tuple[int, str, bool], HeadScore] = {}
    by_scorer: dict[str, dict] = {}  # name -> ScorerSummary as JSON

    def per_head(name: str) -> list[Pair]:
        """Every head's (real, control) scores of one scorer, in head order (None where missing)."""
        return [(scores.get((h.id, name, False)), scores.get((h.id, name, True))) for h in heads]

    for name in item.config.scorers:
        scorer = get_scorer(name)
        for head in heads:
            for control in (False, True):
                found = classified.get((head.id, name, control))
                if found is not None:
                    score = scorer.score(found)
                    if not control:
                        score = score.model_copy(update={"ci95": head_interval(score)})
                    scores[head.id, name, control] = score
                elif not control:
                    reason = ("test labels are all one class" if head.id in one_class
                              else "no classification (a failed or skipped item)")
                    scores[head.id, name, control] = HeadScore(
                        neuron=neuron_key(head.layer, head.neuron), head=f"{head.head_layer}.{head.head}",
                        score=None, tp=0, fn=0, tn=0, fp=0, unparseable=0, skipped=reason)
        real = [scores[h.id, name, False] for h in heads]
        shuffled = [scores[h.id, name, True] for h in heads if (h.id, name, True) in scores]
        by_scorer[name] = ScorerSummary(
            explanations=summarize(real, [c for (_, n, ctl), c in classified.items() if n == name and not ctl]),
            control=summarize(shuffled),
            paired=paired_difference(per_head(name)),
            calls=sum(len(c.calls) for (_, n, _), c in classified.items() if n == name),
            constrained=all_constrained([c for (_, n, _), c in classified.items() if n == name]),
        ).model_dump(mode="json")
    if PROBE in item.config.scorers:
        for name in item.config.scorers:
            if name != PROBE:
                by_scorer[name]["probe_share"] = probe_share(per_head(name), per_head(PROBE)).model_dump(mode="json")
    headline = by_scorer[item.config.scorers[0]]
    summary = {"explanations": headline["explanations"], "control": headline["control"],
               "scorers": by_scorer}

    def write(session: Session) -> None:
        # A resumed campaign scores again once its retried items are in: the new scores replace the old.
        session.execute(delete(ScoreRow).where(ScoreRow.campaign_id == item.campaign_id))
        session.add_all(ScoreRow(campaign_id=item.campaign_id, head_id=head_id, scorer=scorer,
                                 control=control, score=score.score, payload=score)
                        for (head_id, scorer, control), score in scores.items())
        campaign = session.get_one(Campaign, item.campaign_id)
        campaign.summary = {**(campaign.summary or {}), **summary}

    return write
