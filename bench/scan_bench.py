"""Scan throughput on smollm2-135m and the shared corpus, every figure from one run.

Reports, for documents cut to 256 tokens and next-token neurons of layers 26-28:
- scan tokens/s vs a plain forward pass (logits) over the same batches;
- the speed-up over the paper's way (batch size 1, full ``run_with_cache`` per document);
- the fraction of the machine's fp32 matmul roofline (GFLOP/s of a 2048x576x1536 matmul),
  counting the useful matmul FLOPs per token up to the deepest needed layer.

Usage: .venv/bin/python bench/scan_bench.py [--docs 96] [--paper-docs 24] [--batch-tokens 2048]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from services.activations import encode_documents, length_batches, pad_id, pad_right
from services.corpus import load_corpus, split_documents
from services.neurons import next_token_neurons
from services.scan import scan_corpus
from services.subject_model import load_subject_model

CONTEXT = 256
LAYERS = [26, 27, 28]


def matmul_gflops(repeats: int = 20) -> float:
    a, b = torch.randn(2048, 576), torch.randn(576, 1536)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * 2048 * 576 * 1536 * repeats / (time.perf_counter() - start) / 1e9


def useful_flops_per_token(info, cfg, n_layers: int, mean_keys: float) -> float:
    """Weight matmuls of ``n_layers`` blocks plus causal attention (QK^T and AV)."""
    d, d_head = info.d_model, cfg.d_head
    n_kv = getattr(cfg, "n_key_value_heads", None) or info.n_heads
    attn_weights = d * (info.n_heads * d_head) * 2 + d * (n_kv * d_head) * 2  # q, o, k, v
    mlp_weights = d * info.d_mlp * (3 if info.gated_mlp else 2)
    attention = 2 * info.n_heads * d_head * mean_keys  # QK^T and AV, MACs
    return 2 * n_layers * (attn_weights + mlp_weights + attention)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="../shared/corpora/openwebtext-1k.jsonl.gz")
    parser.add_argument("--docs", type=int, default=96)
    parser.add_argument("--paper-docs", type=int, default=24)
    parser.add_argument("--batch-tokens", type=int, default=2048)
    args = parser.parse_args()

    model = load_subject_model("smollm2-135m", device="cpu", dtype="float32")
    documents = split_documents(load_corpus(args.corpus), "train")[: args.docs]
    neurons = [n.ref for n in next_token_neurons(model, LAYERS, per_layer=20)]
    token_lists = encode_documents(model.tokenizer, [d.text for d in documents], CONTEXT)
    n_tokens = sum(len(t) for t in token_lists)
    mean_keys = sum(len(t) * (len(t) + 1) / 2 for t in token_lists) / n_tokens
    batches = [
        pad_right((token_lists[i] for i in batch), pad_id(model.tokenizer), "cpu")[0]
        for batch in length_batches([len(t) for t in token_lists], args.batch_tokens, 64)
    ]

    def plain_forward() -> None:
        with torch.inference_mode():
            for tokens in batches:
                model.bridge(tokens)

    def scan() -> None:
        scan_corpus(model, neurons, documents, top_k=30, context_length=CONTEXT,
                    token_budget=args.batch_tokens)

    paper_lists = token_lists[: args.paper_docs]

    def paper_way() -> None:
        with torch.no_grad():
            for ids in paper_lists:
                _, cache = model.bridge.run_with_cache(torch.tensor([ids]))
                for n in neurons:
                    cache[f"blocks.{n.layer}.mlp.hook_post"][0, :, n.index].max()

    scan()  # warm-up: allocator, kernels, tokenizer caches
    gflops = matmul_gflops()
    t_plain = timed(plain_forward)
    t_scan = timed(scan)
    t_paper = timed(paper_way)
    gflops_after = matmul_gflops()

    scan_tps = n_tokens / t_scan
    plain_tps = n_tokens / t_plain
    paper_tps = sum(len(t) for t in paper_lists) / t_paper
    roofline = (gflops + gflops_after) / 2
    flops = useful_flops_per_token(model.info, model.bridge.cfg, max(LAYERS) + 1, mean_keys)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                   f"torch {torch.__version__}",
        "documents": len(documents), "tokens": n_tokens, "neurons": len(neurons),
        "batch_tokens": args.batch_tokens,
        "scan_tok_s": round(scan_tps, 1), "plain_forward_tok_s": round(plain_tps, 1),
        "paper_way_tok_s": round(paper_tps, 1),
        "scan_over_plain": round(scan_tps / plain_tps, 2),
        "scan_over_paper_way": round(scan_tps / paper_tps, 2),
        "matmul_gflops_before_after": [round(gflops, 1), round(gflops_after, 1)],
        "useful_mflop_per_token": round(flops / 1e6, 1),
        "scan_gflops": round(scan_tps * flops / 1e9, 1),
        "fraction_of_roofline": round(scan_tps * flops / 1e9 / roofline, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
