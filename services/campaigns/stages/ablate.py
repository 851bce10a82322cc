"""Stage ``ablate`` (docs/method.md step 9): zero each explained head and compare the drop of the
neuron token's probability on its active and inactive prompts (KS test; pooled in the summary)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.ablation import pooled_ks
from services.campaigns.records import (
    StageItem,
    Writer,
    campaign_heads,
    head_by_key,
    neuron_attribution,
    neuron_key,
)
from services.runtime import Runtime
from services.schemas import NeuronRef
from services.store import Store
from services.store.models import AblationRow, Campaign
from services.work import AblateWork, ablate


def plan(session: Session, campaign: Campaign) -> list[str]:
    """One item per neuron with explained heads: its heads share one clean forward pass."""
    if not campaign.config.ablation:
        return []
    return sorted({neuron_key(h.layer, h.neuron) for h in campaign_heads(session, campaign.id)})


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    with store.session() as session:
        if "/" in item.key:  # an item planned per head, by a version before per-neuron items
            heads = [head_by_key(session, item.campaign_id, item.key)]
        else:
            ref = NeuronRef.parse(item.key)
            heads = [h for h in campaign_heads(session, item.campaign_id)
                     if (h.layer, h.neuron) == (ref.layer, ref.index)]
        attribution = neuron_attribution(session, item.campaign_id, heads[0].layer, heads[0].neuron)
        head_ids = [h.id for h in heads]
        names = [f"{h.head_layer}.{h.head}" for h in heads]
    result = ablate(runtime, AblateWork(model=item.config.model, attribution=attribution, heads=names))

    def write(session: Session) -> None:
        session.add_all(AblationRow(campaign_id=item.campaign_id, head_id=head_id,
                                    payload=found)
                        for head_id, found in zip(head_ids, result.ablations))

    return write


def summarize(session: Session, campaign_id: str) -> None:
    """At the campaign's end: the KS test pooled over every ablated head's prompts."""
    ablations = list(session.scalars(select(AblationRow.payload).where(AblationRow.campaign_id == campaign_id)))
    ks = pooled_ks(ablations)
    campaign = session.get_one(Campaign, campaign_id)
    campaign.summary = {**(campaign.summary or {}), "ablation": ks.model_dump() if ks else None}
