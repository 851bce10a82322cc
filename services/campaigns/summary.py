"""The figures a user quotes about a campaign: per scorer, mean E, the shuffled control, their
paired difference with its interval, and the random-neuron baseline when one is given."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.campaigns.config import CampaignConfig
from services.campaigns.lifecycle import get_campaign
from services.score import ScorerSummary
from services.store import Store
from services.store.statuses import CampaignStatus


class ScorerLine(BaseModel):
    scorer: str
    summary: ScorerSummary | None = Field(description="None until the score stage has run.")
    baseline_mean: float | None = Field(description="The same scorer's mean E on the random-neuron baseline.")


class CampaignHeadline(BaseModel):
    id: str
    name: str
    status: CampaignStatus
    explainer: str
    strategy: str
    classifier: str
    baseline_id: str | None
    scorers: list[ScorerLine]


def _scorer_summaries(store: Store, campaign_id: str) -> tuple[CampaignConfig, str, dict]:
    with store.session() as session:
        campaign = get_campaign(session, campaign_id)
        raw = (campaign.summary or {}).get("scorers") or {}
        return campaign.config, campaign.status, raw


def campaign_headline(store: Store, campaign_id: str, baseline_id: str | None = None) -> CampaignHeadline:
    config, status, raw = _scorer_summaries(store, campaign_id)
    baseline = _scorer_summaries(store, baseline_id)[2] if baseline_id else {}
    lines = []
    for name in config.scorers:
        summary = ScorerSummary.model_validate(raw[name]) if name in raw else None
        base = ScorerSummary.model_validate(baseline[name]) if name in baseline else None
        lines.append(ScorerLine(scorer=name, summary=summary,
                                baseline_mean=base.explanations.mean if base else None))
    return CampaignHeadline(id=campaign_id, name=config.name, status=status, explainer=config.explainer,
                            strategy=config.explainer_strategy, classifier=config.classifier,
                            baseline_id=baseline_id, scorers=lines)
