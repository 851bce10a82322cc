"""The truncation stage of the README campaign on the bridge and on the fast path, in one run.

smollm2-135m (float32), the README campaign's neurons (27:1263, 27:876, 29:1135), its train
documents (the first ``--docs`` of the train split, context 128) and the campaign defaults
(top 30, keep 80 %, prompts under 100 tokens, 20 per neuron). The scan runs once, on the fast
path (bench/scan_bench.py compares the scans); then ``truncate_contexts`` runs on each path,
alternating ``--rounds`` times, from those contexts. Reports seconds per path, their ratio, and
whether the prompts are the same.

Usage: .venv/bin/python bench/truncation_bench.py [--docs 200] [--rounds 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch

from services.corpus import load_corpus, split_documents
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.subject_model import load_subject_model
from services.truncate import truncate_contexts

NEURONS = [NeuronRef(layer=27, index=1263), NeuronRef(layer=27, index=876), NeuronRef(layer=29, index=1135)]
CONTEXT = 128


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="../shared/corpora/openwebtext-1k.jsonl.gz")
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    model = load_subject_model("smollm2-135m", device="cpu", dtype="float32")
    paths = {"bridge": dataclasses.replace(model, fast=None), "fast": model}
    documents = split_documents(load_corpus(args.corpus), "train")[: args.docs]
    truncate_contexts(model, scan_corpus(model, NEURONS, documents[:8], top_k=2, context_length=CONTEXT),
                      documents[:8], context_length=CONTEXT)  # warm-up: allocator, kernels

    start = time.perf_counter()
    contexts = scan_corpus(model, NEURONS, documents, top_k=30, context_length=CONTEXT)
    scan_seconds = time.perf_counter() - start
    seconds: dict[str, list[float]] = {path: [] for path in paths}
    prompts = {}
    for _ in range(args.rounds):
        for path, subject in paths.items():
            start = time.perf_counter()
            truncated = truncate_contexts(subject, contexts, documents, context_length=CONTEXT)
            seconds[path].append(time.perf_counter() - start)
            prompts[path] = [[(p.doc_id, p.tokens) for p in c.prompts] for c in truncated]

    mean = {path: sum(times) / len(times) for path, times in seconds.items()}
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                   f"torch {torch.__version__}",
        "documents": len(documents), "neurons": [f"{n.layer}:{n.index}" for n in NEURONS], "rounds": args.rounds,
        "fast_scan_seconds": round(scan_seconds, 1),
        "truncation_seconds": {path: [round(t, 1) for t in times] for path, times in seconds.items()},
        "truncation_bridge_over_fast": round(mean["bridge"] / mean["fast"], 2),
        "same_prompts": prompts["bridge"] == prompts["fast"],
        "prompts": sum(len(p) for p in prompts["fast"]),
    }, indent=2))


if __name__ == "__main__":
    main()
