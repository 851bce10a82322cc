"""Ablation (steps 6 and 9): each head's pass started at the head's block vs whole passes.

Started late: ``services.ablation.token_probability_drops`` and ``activation_drops`` (one clean
pass records the block inputs; each head's pass runs from its own block). Whole passes, the way
before f672288: per batch, one hooked pass per head over every block (to the logits at the last
positions, or through the neuron's block). Both run on the same length-bucketed batches, in one
process, and must agree (checked here). Heads sit in layers 12-26 of SmolLM2-135M's 30, like the
heads worth explaining of the README campaign's neurons.

    .venv/bin/python bench/ablation_bench.py [--model smollm2-135m] [--prompts 40] [--repeats 2]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attribution_bench import make_prompts  # noqa: E402

from services.ablation import activation_drops, token_probability_drops, zero_head  # noqa: E402
from services.activations import bos_id, forward_through, length_batches, pad_id, pad_right  # noqa: E402
from services.attribution import HeadRef  # noqa: E402
from services.scan import DEFAULT_MAX_BATCH, DEFAULT_TOKEN_BUDGET  # noqa: E402
from services.schemas import NeuronRef  # noqa: E402
from services.subject_model import load_subject_model  # noqa: E402

HEADS = [HeadRef(layer=layer, head=head) for layer, head in
         [(12, 1), (18, 3), (21, 0), (23, 5), (24, 2), (25, 7), (26, 4), (26, 8)]]
NEURON = NeuronRef(layer=27, index=1263)
TOKEN_ID = 1000
WHOLE, LATE = "whole passes", "started at the head's block"


def whole_passes(model, prompts):
    """Per batch, a whole hooked pass per head: token probabilities and activation drops."""
    bos, pad = bos_id(model.tokenizer), pad_id(model.tokenizer)
    sequences = [[bos, *p] for p in prompts]
    probability = {head: torch.empty(len(sequences)) for head in HEADS}
    drops = {head: torch.empty(len(sequences)) for head in HEADS}
    for batch in length_batches([len(s) for s in sequences], DEFAULT_TOKEN_BUDGET, DEFAULT_MAX_BATCH):
        tokens, lengths = pad_right((sequences[i] for i in batch), pad, model.device)
        rows, last = torch.arange(len(batch)), lengths - 1
        kept = torch.unique(last)
        read: list[torch.Tensor] = []
        post = (f"blocks.{NEURON.layer}.mlp.hook_post", lambda p, hook: read.append(p[rows, last, NEURON.index]))
        forward_through(model, tokens, [post], NEURON.layer)
        clean = read.pop()
        for head in HEADS:
            with torch.inference_mode():
                logits = model.bridge.run_with_hooks(tokens, fwd_hooks=[zero_head(head)], return_type="logits",
                                                     logits_to_keep=kept)
            column = torch.searchsorted(kept, last)
            probability[head][batch] = logits[rows, column].float().softmax(-1)[:, TOKEN_ID]
            forward_through(model, tokens, [zero_head(head), post], NEURON.layer)
            drops[head][batch] = clean - read.pop()
    return probability, drops


def started_late(model, prompts):
    _, probability = token_probability_drops(model, HEADS, TOKEN_ID, prompts)
    return probability, activation_drops(model, NEURON, HEADS, prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    model = load_subject_model(args.model, device="cpu", dtype="float32")
    prompts = make_prompts(model.tokenizer, args.prompts)
    print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"{len(prompts)} prompts of {min(map(len, prompts))}-{max(map(len, prompts))} tokens, {len(HEADS)} heads")
    best = {WHOLE: float("inf"), LATE: float("inf")}
    results = {}
    for _ in range(args.repeats):  # alternate, so drift in machine speed hits both
        for name, run in ((WHOLE, whole_passes), (LATE, started_late)):
            start = time.perf_counter()
            results[name] = run(model, prompts)
            best[name] = min(best[name], time.perf_counter() - start)
    (p_whole, d_whole), (p_late, d_late) = results[WHOLE], results[LATE]
    for head in HEADS:
        assert torch.allclose(p_whole[head], p_late[head], rtol=1e-4, atol=1e-7), head
        assert torch.allclose(d_whole[head], d_late[head], rtol=1e-4, atol=1e-5), head
    for name, seconds in best.items():
        print(f"{name}: {seconds:.2f} s (best of {args.repeats})")
    print(f"speed-up: {best[WHOLE] / best[LATE]:.2f}x; results agree (rtol 1e-4)")


if __name__ == "__main__":
    main()
