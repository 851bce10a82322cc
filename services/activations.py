"""Tokenising, length-bucketed batching, and hooked forward passes that stop early.

Shared by the scan and truncation: both need MLP post-activations of a few layers only, so the
forward pass hooks ``blocks.L.mlp.hook_post`` of just those layers and stops after the deepest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from services.subject_model import SubjectModel

PostReader = Callable[[int, "Float[Tensor, 'batch pos d_mlp']"], None]

# What TransformerLens' ``run_with_hooks`` takes: (hook name or filter, hook function) pairs.
Hooks = list[tuple[str | Callable[..., Any], Callable[..., Any]]]


def bos_id(tokenizer) -> int:
    token_id = tokenizer.bos_token_id
    return tokenizer.eos_token_id if token_id is None else token_id


def pad_id(tokenizer) -> int:
    token_id = tokenizer.pad_token_id
    return bos_id(tokenizer) if token_id is None else token_id


def encode_documents(tokenizer, texts: Sequence[str], context_length: int) -> list[list[int]]:
    """BOS followed by the document's tokens, cut to ``context_length`` tokens in all."""
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    start = [bos_id(tokenizer)]
    return [start + ids[: context_length - 1] for ids in encoded]


def length_batches(
    lengths: Sequence[int], token_budget: int, max_batch: int
) -> list[list[int]]:
    """Group sequence indices into batches of similar length, longest first.

    Sorting by length keeps padding small; each batch's padded size stays within
    ``token_budget`` (a single sequence longer than the budget gets a batch of its own).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]
        if current and ((len(current) + 1) * width > token_budget or len(current) == max_batch):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def pad_right(
    sequences: Iterable[Sequence[int]], pad: int, device
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Right padding: with a causal model, real positions never see the pads after them."""
    import torch

    sequences = list(sequences)
    lengths = torch.tensor([len(s) for s in sequences], device=device)
    tokens = torch.full((len(sequences), int(lengths.max())), pad, dtype=torch.long)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return tokens.to(device), lengths


def run_mlp_post(
    model: SubjectModel,
    tokens: Int[Tensor, "batch pos"],
    layers: Iterable[int],
    read: PostReader,
) -> None:
    """Forward ``tokens`` up to the deepest of ``layers``, calling ``read(layer, post)`` for each.

    ``post`` is ``blocks.L.mlp.hook_post`` (batch, pos, d_mlp); the reader keeps only what it
    needs, so no full activation cache is ever held.
    """
    layers = sorted(set(layers))

    def hook_for(layer: int):
        def hook(post, hook):  # noqa: ARG001 - TransformerLens passes the hook point
            read(layer, post)

        return hook

    forward_through(model, tokens, [(f"blocks.{layer}.mlp.hook_post", hook_for(layer)) for layer in layers],
                    layers[-1])


def forward_through(model: SubjectModel, tokens: Int[Tensor, "batch pos"], hooks: Hooks, last_layer: int) -> None:
    """Forward ``tokens`` with ``hooks`` through block ``last_layer`` and no further.

    TransformerLens' ``stop_at_layer`` stops at the next block's input, so after a model's last
    block it does not stop, and the final norm and the unembedding (a vocabulary-wide product at
    every position, a fifth of SmolLM2-135M's forward) ran for nothing. The stop here is a hook
    on the block's output, raising TransformerLens' own stop, which ``run_with_hooks`` catches.
    """
    import torch
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    def stop(output, hook):  # noqa: ARG001 - TransformerLens passes the hook point
        raise StopAtLayerException(output)

    with torch.inference_mode():
        model.bridge.run_with_hooks(tokens, fwd_hooks=[*hooks, (f"blocks.{last_layer}.hook_out", stop)],
                                    return_type=None)
