"""Scan throughput on the bridge and on the fast path, side by side, every figure from one run.

CPU (default): smollm2-135m (float32) on the shared corpus, documents cut to 256 tokens, the
next-token neurons of layers 26-28. ``--gpu``: a GPT-2-small-shaped model built from a config
(12 layers, d_model 768, 12 heads, d_mlp 3072, random weights, SmolLM2's tokenizer) in bfloat16
on CUDA, documents cut to 1024 tokens, 20 neurons in each of layers 9-11.

For each path (``bridge``: TransformerBridge's own eager attention; ``fast``:
services/fast_forward.py) it reports tokens/s over the same documents, the paths alternating
``--rounds`` times so that load on a shared machine falls on both alike; fast / bridge; the
fraction of the matmul roofline (GFLOP/s of a matmul of the model's MLP shape in the run's
dtype, before and after), counting the matmul FLOPs per token the scan needs (every block
before the deepest needed layer, and that layer up to its MLP activation); and whether both
paths gave the same top K.

Usage: .venv/bin/python bench/scan_bench.py [--gpu] [--docs N] [--rounds 2] [--batch-tokens N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from services.activations import encode_documents
from services.corpus import load_corpus, split_documents
from services.neurons import next_token_neurons
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.settings import get_settings
from services.subject_model import SubjectModel, dequantized_checkpoint, load_subject_model


@dataclasses.dataclass(frozen=True)
class Setup:
    context: int
    layers: list[int]
    docs: int
    batch_tokens: int
    device: str
    dtype: torch.dtype


CPU = Setup(context=256, layers=[26, 27, 28], docs=96, batch_tokens=2048, device="cpu", dtype=torch.float32)
GPU = Setup(context=1024, layers=[9, 10, 11], docs=512, batch_tokens=32768, device="cuda", dtype=torch.bfloat16)


def gpt2_small_from_config(directory: Path) -> SubjectModel:
    """GPT-2 small's shape with random weights and SmolLM2's tokenizer, on CUDA in bfloat16."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(dequantized_checkpoint("smollm2-135m", get_settings())[0])
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_inner=3072, n_positions=1024,
                        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return load_subject_model(str(directory), device="cuda", dtype="bfloat16")


def matmul_gflops(model: SubjectModel, setup: Setup, repeats: int = 20) -> float:
    """GFLOP/s of a (batch tokens x d_model) @ (d_model x d_mlp) product in the run's dtype."""
    shape = (setup.batch_tokens, model.info.d_model, model.info.d_mlp)
    a = torch.randn(shape[:2], device=setup.device, dtype=setup.dtype)
    b = torch.randn(shape[1:], device=setup.device, dtype=setup.dtype)
    for _ in range(3):
        a @ b
    elapsed = timed(lambda: [a @ b for _ in range(repeats)], setup.device)
    return 2 * shape[0] * shape[1] * shape[2] * repeats / elapsed / 1e9


def useful_flops_per_token(model: SubjectModel, deepest: int, mean_keys: float) -> float:
    """Weight matmuls and causal attention (QK^T and AV) of blocks 0..deepest, less the deepest
    block's MLP output projection (the scan reads its input)."""
    info, cfg = model.info, model.bridge.cfg
    d, d_head = info.d_model, cfg.d_head
    n_kv = getattr(cfg, "n_key_value_heads", None) or info.n_heads
    attn_weights = d * (info.n_heads * d_head) * 2 + d * (n_kv * d_head) * 2  # q, o, k, v
    mlp_weights = d * info.d_mlp * (3 if info.gated_mlp else 2)
    attention = 2 * info.n_heads * d_head * mean_keys
    return 2 * ((deepest + 1) * (attn_weights + mlp_weights + attention) - d * info.d_mlp)


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="../shared/corpora/openwebtext-1k.jsonl.gz")
    parser.add_argument("--gpu", action="store_true", help="the GPT-2-small-shaped bfloat16 model on CUDA")
    parser.add_argument("--docs", type=int)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int)
    args = parser.parse_args()
    setup = GPU if args.gpu else CPU
    setup = dataclasses.replace(setup, docs=args.docs or setup.docs,
                                batch_tokens=args.batch_tokens or setup.batch_tokens)

    with tempfile.TemporaryDirectory() as directory:
        if args.gpu:
            model = gpt2_small_from_config(Path(directory))
            neurons = [NeuronRef(layer=layer, index=index) for layer in setup.layers for index in range(7, 3072, 153)]
        else:
            model = load_subject_model("smollm2-135m", device="cpu", dtype="float32")
            neurons = [n.ref for n in next_token_neurons(model, setup.layers, per_layer=20)]
    paths = {"bridge": dataclasses.replace(model, fast=None), "fast": model}
    documents = split_documents(load_corpus(args.corpus), "train")[: setup.docs]
    token_lists = encode_documents(model.tokenizer, [d.text for d in documents], setup.context)
    n_tokens = sum(len(t) for t in token_lists)
    mean_keys = sum(len(t) * (len(t) + 1) / 2 for t in token_lists) / n_tokens

    results = {}

    def scan(path: str, docs: int = len(documents)) -> None:
        results[path] = scan_corpus(paths[path], neurons, documents[:docs], top_k=30,
                                    context_length=setup.context, token_budget=setup.batch_tokens)

    for path in paths:  # warm-up: allocator, kernels, tokenizer caches
        scan(path, docs=16)
    gflops = matmul_gflops(model, setup)
    seconds: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(args.rounds):
        for path in paths:
            seconds[path].append(timed(lambda: scan(path), setup.device))
    gflops_after = matmul_gflops(model, setup)

    roofline = (gflops + gflops_after) / 2
    flops = useful_flops_per_token(model, max(setup.layers), mean_keys)
    tok_s = {path: n_tokens * args.rounds / sum(times) for path, times in seconds.items()}
    hits = {path: [[(h.doc_id, h.position) for h in c.hits] for c in contexts] for path, contexts in results.items()}
    activation_gap = max(abs(a.activation - b.activation) for ca, cb in zip(results["bridge"], results["fast"])
                         for a, b in zip(ca.hits, cb.hits))
    print(json.dumps({
        "machine": (f"{torch.cuda.get_device_name() if args.gpu else platform.processor() or platform.machine()}, "
                    f"{torch.get_num_threads()} threads, torch {torch.__version__}"),
        "model": model.info.name if not args.gpu else "GPT-2 small shape from a config",
        "dtype": str(setup.dtype), "documents": len(documents), "tokens": n_tokens, "neurons": len(neurons),
        "context": setup.context, "batch_tokens": setup.batch_tokens, "rounds": args.rounds,
        "seconds": {path: [round(t, 2) for t in times] for path, times in seconds.items()},
        "tok_s": {path: round(v, 1) for path, v in tok_s.items()},
        "fast_over_bridge": round(tok_s["fast"] / tok_s["bridge"], 2),
        "matmul_gflops_before_after": [round(gflops, 1), round(gflops_after, 1)],
        "useful_mflop_per_token": round(flops / 1e6, 1),
        "fraction_of_roofline": {path: round(v * flops / 1e9 / roofline, 3) for path, v in tok_s.items()},
        "same_top_k": hits["bridge"] == hits["fast"],
        "max_activation_gap": activation_gap,
    }, indent=2))


if __name__ == "__main__":
    main()
