"""Stage ``scan`` (docs/method.md step 2): one pass over the training split finds every neuron's
top-K documents."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.campaigns.records import StageItem, Writer, campaign_neurons, neuron_key, set_provenance
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign, ContextRow
from services.work import ScanWork, scan


def plan(session: Session, campaign: Campaign) -> list[str]:
    return ["train"] if campaign_neurons(session, campaign.id) else []


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    config = item.config
    with store.session() as session:
        neurons = [neuron_key(n.layer, n.neuron) for n in campaign_neurons(session, item.campaign_id)]
    found = scan(runtime, ScanWork(**config.selection("train").model_dump(), model=config.model, neurons=neurons,
                                   top_k=config.top_k, context_length=config.context_length))

    corpus = runtime.corpus_info(config.selection("train"))

    def write(session: Session) -> None:
        for context in found.contexts:
            session.add_all(
                ContextRow(campaign_id=item.campaign_id, split="train", layer=context.neuron.layer,
                           neuron=context.neuron.index, rank=rank, doc_id=hit.doc_id,
                           position=hit.position, activation=hit.activation)
                for rank, hit in enumerate(context.hits))
        set_provenance(session, item.campaign_id, corpus_train=corpus.model_dump())

    return write
