"""The scan stage in shards: several items over document ranges whose merged top K is exactly
the one pass's, each item's progress recorded while it runs, and the report's throughput line.
Real store (SQLite file), real tiny model, real shared corpus."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.campaigns.execute import execute_item
from services.campaigns.item_progress import ItemProgress, ProgressReporter
from services.campaigns.lifecycle import advance, claim, create_campaign
from services.campaigns.records import StageItem
from services.campaigns.stages.scan import train_hits
from services.campaigns.status_view import progress
from services.report.render import scan_throughput
from services.store.models import Campaign, WorkItem
from tests.conftest import tiny_campaign

N_TRAIN = 150


def campaign(model_dir, corpus, **overrides):
    return tiny_campaign(model_dir, corpus).model_copy(update=overrides)


def scanned(store, runtime, config) -> tuple[str, list[str]]:
    """Run a campaign's neurons and scan stages; its id and scan item keys."""
    campaign_id = create_campaign(store, config)
    for _ in range(2):
        for item_id in advance(store, campaign_id):
            assert execute_item(store, runtime, item_id) == "done"
    with store.session() as session:
        keys = list(session.scalars(select(WorkItem.key).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == "scan").order_by(WorkItem.id)))
    return campaign_id, keys


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from services.store import Store

    made = []

    def make(name: str) -> Store:
        made.append(Store(f"sqlite:///{tmp_path_factory.mktemp(name) / 'results.sqlite'}"))
        return made[-1]

    yield make
    for store in made:
        store.dispose()


def test_three_shards_give_exactly_the_one_pass_top_k(stores, runtime, tiny_gpt2_dir, corpus_path):
    one_store, sharded_store = stores("one"), stores("sharded")
    one, one_keys = scanned(one_store, runtime, campaign(tiny_gpt2_dir, corpus_path, max_train_docs=N_TRAIN))
    sharded, keys = scanned(sharded_store, runtime, campaign(
        tiny_gpt2_dir, corpus_path, max_train_docs=N_TRAIN, scan_shard_docs=64))
    assert one_keys == ["train"]
    assert keys == ["train/0-63", "train/64-127", "train/128-149"]
    for layer, neuron in ((3, 5), (3, 17)):
        with one_store.session() as session:
            expected = train_hits(session, one, layer, neuron, 8)
        with sharded_store.session() as session:
            merged = train_hits(session, sharded, layer, neuron, 8)
        assert len(expected) == 8
        assert merged == expected  # doc ids, positions and activations, exactly
        assert len({int(hit.doc_id.removeprefix("owt-")) // 64 for hit in merged}) > 1  # several shards won
    with sharded_store.session() as session:
        provenance = session.get(Campaign, sharded).provenance
    with one_store.session() as session:
        assert session.get(Campaign, one).provenance["corpus_train"] == provenance["corpus_train"]
    assert provenance["corpus_train"]["n_documents"] == N_TRAIN

    scan = next(s for s in progress(sharded_store, sharded).stages if s.stage == "scan")
    assert scan.work is not None
    assert (scan.work.unit, scan.work.done, scan.work.total) == ("documents", N_TRAIN, N_TRAIN)
    assert scan.work.tokens > N_TRAIN and scan.work.tokens_per_s > 0
    line = scan_throughput(sharded_store, sharded)
    assert line is not None and f"{N_TRAIN} documents" in line and "3 item(s)" in line and "tokens/s" in line


def test_a_merge_keeps_the_earlier_document_of_a_tie(stores, runtime, tiny_gpt2_dir, tmp_path):
    """Every document twice, the copy 64 documents later, in the next shard: equal activations.
    The top 7 are three pairs, earlier copy first, and the earlier copy of the fourth, in the one
    pass and in the merge alike."""
    import json

    from tests.conftest import corpus_texts

    texts = corpus_texts(96)
    path = tmp_path / "twice.jsonl"  # 160 documents: the first 128 are the train split
    path.write_text("".join(json.dumps({"id": f"d{i:03d}", "text": t[:300]}) + "\n"
                            for i, t in enumerate(texts[:64] + texts[:64] + texts[64:])))
    one_store, sharded_store = stores("tie-one"), stores("tie-sharded")
    one, _ = scanned(one_store, runtime, campaign(tiny_gpt2_dir, path, max_train_docs=128, top_k=7))
    sharded, keys = scanned(sharded_store, runtime, campaign(tiny_gpt2_dir, path, max_train_docs=128, top_k=7,
                                                              scan_shard_docs=64))
    assert len(keys) == 2
    with one_store.session() as session, sharded_store.session() as other:
        expected, merged = train_hits(session, one, 3, 5, 7), train_hits(other, sharded, 3, 5, 7)
    assert merged == expected
    index = [int(hit.doc_id[1:]) for hit in merged]
    assert all(i < 64 for i in index[::2]) and index[1::2] == [i + 64 for i in index[:6:2]]


def test_a_running_item_reports_its_progress_with_an_eta(store, runtime, tiny_gpt2_dir, corpus_path):
    campaign_id = create_campaign(store, tiny_campaign(tiny_gpt2_dir, corpus_path))
    (neurons,) = advance(store, campaign_id)
    assert execute_item(store, runtime, neurons) == "done"
    (scan_item,) = advance(store, campaign_id)
    _, item = claim(store, scan_item)
    reporter = ProgressReporter(store, "scan", item, "documents", 100, every_s=0.0)
    reporter(0, 0)
    reporter(25, 1000)
    scan = next(s for s in progress(store, campaign_id).stages if s.stage == "scan")
    assert scan.work is not None and (scan.work.done, scan.work.total, scan.work.tokens) == (25, 100, 1000)
    assert scan.work.tokens_per_s > 0
    elapsed = reporter.latest.elapsed_s
    assert scan.work.eta_s == pytest.approx(elapsed * 3)  # 75 documents left at 25 per elapsed
    assert progress(store, campaign_id).eta_s == pytest.approx(elapsed * 3)


def test_reports_are_written_at_most_every_few_seconds(store, tiny_gpt2_dir, corpus_path):
    campaign_id = create_campaign(store, tiny_campaign(tiny_gpt2_dir, corpus_path))
    with store.session() as session:
        session.add(WorkItem(campaign_id=campaign_id, stage="scan", key="train", queue="gpu", status="running"))
    item = StageItem(campaign_id=campaign_id, config=tiny_campaign(tiny_gpt2_dir, corpus_path), key="train")
    reporter = ProgressReporter(store, "scan", item, "documents", 10, every_s=3600)
    reporter(5, 50)  # within the interval: not written
    with store.session() as session:
        assert session.scalars(select(WorkItem.progress)).one() is None
        reporter.write(session)  # the item's writer stores the final figures
    with store.session() as session:
        stored = session.scalars(select(WorkItem.progress)).one()
    assert isinstance(stored, ItemProgress) and (stored.done, stored.total, stored.tokens) == (5, 10, 50)
