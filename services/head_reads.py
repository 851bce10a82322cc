"""What a head reads: its attention at the firing position, and how that differs between the
prompts where the head is active and those where it is not.

A small explainer cannot find a difference in twenty raw documents; it can phrase one that is
measured for it. So the GPU side records, for every head worth explaining, the source tokens
its attention weights most at the prompt's last position (the token before the neuron's token);
the ``contrastive`` explainer ranks those tokens by their log-odds of being read on active rather
than inactive prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from lookups import SourceRead
from services.activations import Hooks, bos_id, forward_through, length_batches, pad_id, pad_right
from services.scan import DEFAULT_MAX_BATCH, DEFAULT_TOKEN_BUDGET

if TYPE_CHECKING:
    from services.attribution import HeadRef
    from services.subject_model import SubjectModel

READS_PER_HEAD = 3


class PromptReads(BaseModel):
    """One prompt: its tokens as text pieces, and each head's strongest reads."""

    pieces: list[str] = Field(description="The prompt's tokens as text; they concatenate to the prompt.")
    heads: dict[str, list[SourceRead]] = Field(description="'LAYER.HEAD' -> reads, strongest first.")


def token_pieces(tokenizer, tokens: Sequence[int]) -> list[str]:
    """Each token's text such that the pieces concatenate to the decoded prompt (a character
    split over two byte-level tokens goes whole to the token that completes it)."""
    pieces, previous = [], ""
    for end in range(1, len(tokens) + 1):
        text = tokenizer.decode(list(tokens[:end]))
        if text.endswith("\ufffd"):  # an unfinished character: wait for the next token
            pieces.append("")
            continue
        pieces.append(text[len(previous):])
        previous = text
    return pieces


def head_reads(
    model: SubjectModel,
    prompts: Sequence[Sequence[int]],
    heads: Sequence[HeadRef],
    *,
    per_head: int = READS_PER_HEAD,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> list[PromptReads]:
    """For each ``[BOS] + prompt``, the ``per_head`` source tokens (BOS excluded) each head
    attends to most from the last position, from ``blocks.L.attn.hook_pattern``."""
    import torch

    if not heads:
        return [PromptReads(pieces=token_pieces(model.tokenizer, p), heads={}) for p in prompts]
    layers = sorted({h.layer for h in heads})
    bos, pad = bos_id(model.tokenizer), pad_id(model.tokenizer)
    sequences = [[bos, *p] for p in prompts]
    # weights[prompt][layer]: (n_heads, length) attention of the last query, BOS dropped
    weights: list[dict[int, torch.Tensor]] = [{} for _ in sequences]
    for batch in length_batches([len(s) for s in sequences], token_budget, max_batch):
        tokens, lengths = pad_right((sequences[i] for i in batch), pad, model.device)

        def keep_pattern(pattern, hook):
            layer = int(hook.name.split(".")[1])
            for row, index in enumerate(batch):
                last = int(lengths[row]) - 1
                weights[index][layer] = pattern[row, :, last, 1 : last + 1].float().cpu()

        hooks: Hooks = [(f"blocks.{layer}.attn.hook_pattern", keep_pattern) for layer in layers]
        forward_through(model, tokens, hooks, layers[-1])
    found = []
    for prompt, per_layer in zip(prompts, weights):
        pieces = token_pieces(model.tokenizer, prompt)
        last = len(prompt) - 1
        reads = {}
        for head in heads:
            row = per_layer[head.layer][head.head]
            top = torch.topk(row, min(per_head, len(prompt)))
            reads[str(head)] = [
                SourceRead(position=int(p), offset=int(p) - last, token=pieces[int(p)],
                           weight=min(max(float(w), 0.0), 1.0))
                for w, p in zip(top.values, top.indices)
            ]
        found.append(PromptReads(pieces=pieces, heads=reads))
    return found


