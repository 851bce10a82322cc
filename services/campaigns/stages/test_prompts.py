"""Stage ``test_prompts`` (docs/method.md step 6): steps 2-4 again on the held-out test split,
labelling each explained head's test prompts active or inactive, with its ablation effects."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns.item_progress import ProgressReporter
from services.campaigns.records import StageItem, Writer, campaign_heads, neuron_attribution, set_provenance
from services.corpus import corpus_info, fetch_documents, selected_positions, stream_selection
from services.held_out import held_out_test_prompts
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign, TestSetRow


def plan(session: Session, campaign: Campaign) -> list[str]:
    return ["test"] if campaign_heads(session, campaign.id) else []


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    """The test sets of the heads that have none yet: every head the first time, and the heads
    that retried items added when a resumed campaign runs this item again."""
    config = item.config
    with store.session() as session:
        tested = set(session.scalars(select(TestSetRow.head_id).where(TestSetRow.campaign_id == item.campaign_id)))
        heads = [h for h in campaign_heads(session, item.campaign_id) if h.id not in tested]
        neurons = sorted({(h.layer, h.neuron) for h in heads})
        attributions = [neuron_attribution(session, item.campaign_id, layer, neuron) for layer, neuron in neurons]
        head_ids = {(h.layer, h.neuron, h.head_layer, h.head): h.id for h in heads}
    selection = config.selection("test")
    total = len(selected_positions(selection))
    reporter = ProgressReporter(store, "test_prompts", item, "documents", total)
    test_sets = held_out_test_prompts(
        runtime.model(config.model), attributions, stream_selection(selection),
        fetch=lambda ids: fetch_documents(selection, ids), per_head=config.test_prompts_per_head,
        sampling=config.test_sampling, activity=config.activity,
        top_k=config.top_k, context_length=config.context_length, total=total, report=reporter,
    ) if attributions else []
    corpus = corpus_info(selection)

    def write(session: Session) -> None:
        for test_set in test_sets:
            key = (test_set.neuron.layer, test_set.neuron.index, test_set.head.layer, test_set.head.head)
            if key not in head_ids:  # a head of the same neuron that has its test set already
                continue
            session.add(TestSetRow(campaign_id=item.campaign_id, head_id=head_ids[key],
                                   one_class=test_set.one_class, payload=test_set))
        reporter.write(session)
        set_provenance(session, item.campaign_id, corpus_test=corpus.model_dump())

    return write
