"""Stage ``truncate`` (docs/method.md step 3): per neuron, the shortest prompts of its top
documents that keep the activation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns.records import StageItem, Writer, neuron_key
from services.campaigns.stages.scan import train_hits
from services.runtime import Runtime
from services.schemas import NeuronContexts, NeuronRef
from services.store import Store
from services.store.models import Campaign, ContextRow, PromptRow
from services.work import TruncateWork, truncate


def plan(session: Session, campaign: Campaign) -> list[str]:
    rows = session.execute(select(ContextRow.layer, ContextRow.neuron).where(
        ContextRow.campaign_id == campaign.id, ContextRow.split == "train").distinct()).all()
    return sorted({neuron_key(layer, neuron) for layer, neuron in rows})


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    config, ref = item.config, NeuronRef.parse(item.key)
    with store.session() as session:
        hits = train_hits(session, item.campaign_id, ref.layer, ref.index, config.top_k)
    found = truncate(runtime, TruncateWork(
        **config.selection("train").model_dump(), model=config.model, contexts=[NeuronContexts(neuron=ref, hits=hits)],
        context_length=config.context_length, keep_fraction=config.keep_fraction,
        max_prompt_tokens=config.max_prompt_tokens, prompts_per_neuron=config.prompts_per_neuron)).contexts[0]

    def write(session: Session) -> None:
        session.add_all(PromptRow(campaign_id=item.campaign_id, split="train", layer=ref.layer,
                                  neuron=ref.index, rank=rank, payload=p)
                        for rank, p in enumerate(found.prompts or []))

    return write
