"""Stage ``ablate`` (docs/method.md step 9): zero each explained head and compare the drop of the
neuron token's probability on its active and inactive prompts (KS test; pooled in the summary)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.ablation import HeadAblation, pooled_ks
from services.campaigns.config import CampaignConfig
from services.campaigns.records import StageItem, Writer, campaign_heads, head_by_key, neuron_attribution
from services.runtime import Runtime
from services.store import Store
from services.store.models import AblationRow, Campaign
from services.work import AblateWork, ablate


def plan(session: Session, campaign: Campaign) -> list[str]:
    if not CampaignConfig.model_validate(campaign.config).ablation:
        return []
    return [h.key for h in campaign_heads(session, campaign.id)]


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    with store.session() as session:
        head = head_by_key(session, item.campaign_id, item.key)
        attribution = neuron_attribution(session, item.campaign_id, head.layer, head.neuron)
    result = ablate(runtime, AblateWork(model=item.config.model, attribution=attribution,
                                        head=f"{head.head_layer}.{head.head}"))

    def write(session: Session) -> None:
        session.add(AblationRow(campaign_id=item.campaign_id, head_id=head.id, payload=result.model_dump(mode="json")))

    return write


def summarize(session: Session, campaign_id: str) -> None:
    """At the campaign's end: the KS test pooled over every ablated head's prompts."""
    ablations = [HeadAblation.model_validate(p) for p in session.scalars(
        select(AblationRow.payload).where(AblationRow.campaign_id == campaign_id))]
    ks = pooled_ks(ablations)
    campaign = session.get_one(Campaign, campaign_id)
    campaign.summary = {**(campaign.summary or {}), "ablation": ks.model_dump() if ks else None}
