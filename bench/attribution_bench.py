"""Head attribution throughput: the batched implementation vs the paper's per-prompt loop.

Baseline (the paper's way): per prompt, ``run_with_cache`` over the whole model, then
``cache.stack_head_results(layer=L, pos_slice=-1)`` and a dot with the neuron's direction.
Batched: ``services.attribution.head_attributions`` (length-bucketed batches, stops after block
L, keeps only ``hook_z`` at the last position and a few scalars of layer L).

Both compute the same scores (checked here) on the same prompts, in one process. The prompts are
corpus windows with the lengths of truncated prompts (8-64 tokens, seeded).

    .venv/bin/python bench/attribution_bench.py [--model smollm2-135m] [--neuron 27:1263] [--prompts 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.attribution import default_definition, head_attributions  # noqa: E402
from services.corpus import load_corpus  # noqa: E402
from services.schemas import NeuronRef  # noqa: E402
from services.subject_model import load_subject_model  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "openwebtext-1k.jsonl.gz"


def make_prompts(tokenizer, n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    docs = load_corpus(str(CORPUS)).documents[:n]
    prompts = []
    for doc in docs:
        ids = tokenizer(doc.text[:2000], add_special_tokens=False)["input_ids"]
        length = rng.randint(8, 64)
        end = rng.randint(length, max(length, len(ids)))
        prompts.append(ids[end - length : end] or ids[:1])
    return prompts


def per_prompt_loop(model, neuron: NeuronRef, prompts) -> torch.Tensor:
    """The paper's way, one prompt at a time with a full cache; same definition as batched."""
    bridge, layer, index = model.bridge, neuron.layer, neuron.index
    bos = model.tokenizer.bos_token_id
    w_in = bridge.W_in[layer][:, index]
    w_gate = bridge.W_gate[layer][:, index] if model.info.gated_mlp else None
    out = []
    with torch.no_grad():
        for prompt in prompts:
            _, cache = bridge.run_with_cache(torch.tensor([[bos, *prompt]]))
            results = cache.stack_head_results(layer=layer, pos_slice=-1)[:, 0]  # (L*H, d_model)
            scale = cache[f"blocks.{layer}.ln2.hook_scale"][0, -1]
            if w_gate is None:
                direction = w_in
            else:  # gradient of silu(x·w_gate) (x·w_in) in x
                gate = cache[f"blocks.{layer}.mlp.hook_pre"][0, -1, index]
                linear = cache[f"blocks.{layer}.mlp.hook_pre_linear"][0, -1, index]
                sig = torch.sigmoid(gate)
                direction = sig * (1 + gate * (1 - sig)) * linear * w_gate + gate * sig * w_in
            out.append((results / scale @ direction).reshape(layer, -1))
    return torch.stack(out)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--neuron", default="27:1263")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    model = load_subject_model(args.model, device=args.device, dtype="float32")
    neuron = NeuronRef.parse(args.neuron)
    prompts = make_prompts(model.tokenizer, args.prompts)
    definition = default_definition(model)
    # Warm up both paths (allocator, lazy init) on a few prompts.
    per_prompt_loop(model, neuron, prompts[:2])
    head_attributions(model, neuron, prompts[:2])

    # Alternate the two paths and keep each one's best time: the cores are shared, and load that
    # comes and goes then hits both paths alike.
    slow_times, fast_times = [], []
    for _ in range(args.repeats):
        slow, seconds = timed(lambda: per_prompt_loop(model, neuron, prompts))
        slow_times.append(seconds)
        fast, seconds = timed(lambda: head_attributions(model, neuron, prompts))
        fast_times.append(seconds)
    slow_s, fast_s = min(slow_times), min(fast_times)
    torch.testing.assert_close(fast, slow.float().cpu(), rtol=1e-3, atol=1e-5)

    n = len(prompts)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else (
        f"CPU ({platform.processor() or platform.machine()}), torch threads {torch.get_num_threads()}")
    print(f"model {args.model}, neuron {neuron}, definition {definition}, {n} prompts "
          f"({min(map(len, prompts))}-{max(map(len, prompts))} tokens + BOS), device {device}")
    print(f"per-prompt run_with_cache + stack_head_results: {n / slow_s:.1f} prompts/s ({slow_s:.2f} s)")
    print(f"batched head_attributions:                      {n / fast_s:.1f} prompts/s ({fast_s:.2f} s)")
    print(f"speed-up: {slow_s / fast_s:.1f}x (best of {args.repeats} alternating runs; scores agree to rtol 1e-3)")


if __name__ == "__main__":
    main()
