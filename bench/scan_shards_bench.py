"""Sharded scan (issue 11): the scan stage of one campaign run by 1 and by 2 worker processes,
every figure from one run.

Both runs go through the campaign code a gpu worker runs (``execute_item`` over a SQLite results
store): run A is one process scanning the split as the single item ``train``; run B is two
processes, each taking one shard (``scan_shard_docs`` = half the split). The merged top K of B
must equal A's exactly (doc ids, positions, activations). Each process uses ``--threads`` torch
threads (1: one core stands for one GPU) and loads its model before the clock starts.

Usage: .venv/bin/python bench/scan_shards_bench.py [--docs 256] [--context 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from services.campaigns.config import CampaignConfig
from services.campaigns.execute import execute_item
from services.campaigns.lifecycle import advance, create_campaign
from services.campaigns.stages.scan import train_hits
from services.runtime import Runtime
from services.settings import Settings
from services.store import Store
from services.store.models import NeuronRow, WorkItem

MODEL = "smollm2-135m"


def worker(url: str, item_ids: list[int], threads: int, ready, start) -> None:
    import torch

    torch.set_num_threads(threads)
    runtime = Runtime(Settings(device="cpu"))
    runtime.model(MODEL)
    store = Store(url)
    ready.wait()
    start.wait()
    for item_id in item_ids:
        assert execute_item(store, runtime, item_id) == "done"


def run(workers: int, config: CampaignConfig, threads: int) -> tuple[Store, str, float, int]:
    """The campaign's scan stage by ``workers`` processes: store, campaign id, wall seconds, tokens."""
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'results.sqlite'}"
    store = Store(url)
    campaign_id = create_campaign(store, config)
    runtime = Runtime(Settings(device="cpu"))
    for item_id in advance(store, campaign_id):  # neurons
        execute_item(store, runtime, item_id)
    scan_items = advance(store, campaign_id)
    context = mp.get_context("spawn")
    ready, start = context.Barrier(workers + 1), context.Barrier(workers + 1)
    processes = [context.Process(target=worker, args=(url, scan_items[w::workers], threads, ready, start))
                 for w in range(workers)]
    for process in processes:
        process.start()
    ready.wait()  # every model loaded
    began = time.perf_counter()
    start.wait()
    for process in processes:
        process.join()
        assert process.exitcode == 0
    wall = time.perf_counter() - began
    with store.session() as session:
        tokens = sum(p.tokens for p in session.scalars(
            select(WorkItem.progress).where(WorkItem.campaign_id == campaign_id, WorkItem.stage == "scan")))
    return store, campaign_id, wall, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="../shared/corpora/openwebtext-1k.jsonl.gz")
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    base = dict(model=MODEL, corpus=str(Path(args.corpus).resolve()), layers=[26, 27, 28], per_layer=20,
                max_train_docs=args.docs, context_length=args.context)
    one_store, one_id, one_wall, one_tokens = run(1, CampaignConfig(**base, scan_shard_docs=args.docs), args.threads)
    two_store, two_id, two_wall, two_tokens = run(2, CampaignConfig(**base, scan_shard_docs=args.docs // 2),
                                                  args.threads)
    assert one_tokens == two_tokens
    with one_store.session() as one, two_store.session() as two:
        neurons = [(n.layer, n.neuron) for n in one.scalars(select(NeuronRow).where(NeuronRow.campaign_id == one_id))]
        exact = all(train_hits(one, one_id, layer, neuron, 30) == train_hits(two, two_id, layer, neuron, 30)
                    for layer, neuron in neurons)
    import torch

    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"{args.threads} thread(s) per worker",
        "documents": args.docs, "context": args.context, "tokens": one_tokens, "neurons": len(neurons),
        "one_worker_s": round(one_wall, 2), "two_workers_s": round(two_wall, 2),
        "one_worker_tok_s": round(one_tokens / one_wall, 1), "two_workers_tok_s": round(two_tokens / two_wall, 1),
        "two_over_one": round(one_wall / two_wall, 2), "top_k_identical": exact,
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }, indent=2))


if __name__ == "__main__":
    main()
