"""Stage ``attribute`` (docs/method.md step 4): per neuron, each earlier head's attribution on
its prompts, the heads active on each, the heads worth explaining and what those heads read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns.records import StageItem, Writer, neuron_key
from services.runtime import Runtime
from services.schemas import NeuronRef, TruncatedPrompt
from services.store import Store
from services.store.models import AttributionRow, Campaign, HeadRow, PromptRow
from services.work import AttributeWork, PromptIn, attribute


def plan(session: Session, campaign: Campaign) -> list[str]:
    rows = session.execute(select(PromptRow.layer, PromptRow.neuron).where(
        PromptRow.campaign_id == campaign.id, PromptRow.split == "train").distinct()).all()
    return sorted({neuron_key(layer, neuron) for layer, neuron in rows})


def training_prompts(session: Session, campaign_id: str, ref: NeuronRef) -> list[TruncatedPrompt]:
    rows = session.scalars(select(PromptRow).where(
        PromptRow.campaign_id == campaign_id, PromptRow.split == "train",
        PromptRow.layer == ref.layer, PromptRow.neuron == ref.index).order_by(PromptRow.rank))
    return [r.payload for r in rows]


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    config, ref = item.config, NeuronRef.parse(item.key)
    with store.session() as session:
        prompts = training_prompts(session, item.campaign_id, ref)
    found = attribute(runtime, AttributeWork(
        model=config.model, neuron=item.key, active_stds=config.active_stds, worth_range=config.worth_range,
        prompts=[PromptIn(doc_id=p.doc_id, text=p.text, tokens=p.tokens) for p in prompts]))

    def write(session: Session) -> None:
        session.add(AttributionRow(campaign_id=item.campaign_id, layer=ref.layer, neuron=ref.index,
                                   definition=found.definition, payload=found))
        session.add_all(HeadRow(campaign_id=item.campaign_id, layer=ref.layer, neuron=ref.index,
                                head_layer=a.head.layer, head=a.head.head, active_fraction=a.active_fraction)
                        for a in found.worth_explaining)

    return write
