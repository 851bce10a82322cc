"""Stage ``scan`` (docs/method.md step 2): passes over the training split find every neuron's
top-K documents.

A split longer than ``scan_shard_docs`` is scanned in shards, items ``train/FIRST-LAST`` (document
indices within the split, inclusive), so several GPU workers share it; a shorter one is the single
item ``train``. Shard ``s`` stores its top K as ranks ``s*K ...``: ``train_hits`` merges them into
exactly the top K one pass would find (``services.scan``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns.item_progress import ProgressReporter
from services.campaigns.records import StageItem, Writer, campaign_neurons, set_provenance
from services.corpus import corpus_info, selected_positions, stream_selection
from services.runtime import Runtime
from services.scan import merge_hits, scan_corpus
from services.schemas import ContextHit, NeuronRef
from services.store import Store
from services.store.models import Campaign, ContextRow, WorkItem


def plan(session: Session, campaign: Campaign) -> list[str]:
    if not campaign_neurons(session, campaign.id):
        return []
    planned = list(session.scalars(select(WorkItem.key).where(
        WorkItem.campaign_id == campaign.id, WorkItem.stage == "scan").order_by(WorkItem.id)))
    if planned:  # a resumed campaign keeps its shards
        return planned
    config = campaign.config
    size = config.scan_shard_docs
    if config.max_train_docs is not None and config.max_train_docs <= size:
        return ["train"]
    n_docs = len(selected_positions(config.selection("train")))  # one streamed pass over the ids
    if n_docs <= size:
        return ["train"]
    return [f"train/{first}-{min(first + size, n_docs) - 1}" for first in range(0, n_docs, size)]


def shard_range(key: str) -> tuple[int, int | None]:
    """Document indices ``first, stop`` of a scan item within the split (stop None: to the end)."""
    if key == "train":
        return 0, None
    first, last = key.removeprefix("train/").split("-")
    return int(first), int(last) + 1


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    config = item.config
    with store.session() as session:
        neurons = [NeuronRef(layer=n.layer, index=n.neuron) for n in campaign_neurons(session, item.campaign_id)]
    selection = config.selection("train")
    first, stop = shard_range(item.key)
    total = (stop if stop is not None else len(selected_positions(selection))) - first
    reporter = ProgressReporter(store, "scan", item, "documents", total)
    found = scan_corpus(runtime.model(config.model), neurons, stream_selection(selection, first, stop),
                        top_k=config.top_k, context_length=config.context_length, total=total,
                        progress=runtime.progress, report=reporter)
    offset = first // config.scan_shard_docs * config.top_k
    corpus = corpus_info(selection) if first == 0 else None  # the whole split's: the first shard records it

    def write(session: Session) -> None:
        for context in found:
            session.add_all(
                ContextRow(campaign_id=item.campaign_id, split="train", layer=context.neuron.layer,
                           neuron=context.neuron.index, rank=offset + rank, doc_id=hit.doc_id,
                           position=hit.position, activation=hit.activation)
                for rank, hit in enumerate(context.hits))
        reporter.write(session)
        if corpus is not None:
            set_provenance(session, item.campaign_id, corpus_train=corpus.model_dump())

    return write


def train_hits(session: Session, campaign_id: str, layer: int, neuron: int, top_k: int) -> list[ContextHit]:
    """A neuron's top ``top_k`` training documents: its shards' lists merged."""
    rows = session.scalars(select(ContextRow).where(
        ContextRow.campaign_id == campaign_id, ContextRow.split == "train",
        ContextRow.layer == layer, ContextRow.neuron == neuron).order_by(ContextRow.rank))
    return merge_hits((ContextHit(doc_id=r.doc_id, position=r.position, activation=r.activation) for r in rows),
                      top_k)
