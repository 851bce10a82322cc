"""Tokenising, length-bucketed batching, and hooked forward passes that stop early or start late.

Shared by the scan and truncation: both need MLP post-activations of a few layers only, so the
forward pass hooks ``blocks.L.mlp.hook_post`` of just those layers and stops after the deepest,
on the model's fast path where it has one.
Ablation changes nothing before the ablated head's block, so its passes start there, from the
block inputs a clean pass recorded (``record_block_inputs`` and ``resume``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    needs, so no full activation cache is ever held. The model's fast path computes it where
    there is one (``services.fast_forward``), else the bridge.
    """
    layers = sorted(set(layers))
    if model.fast is not None:
        model.fast.run_mlp_post(tokens, layers, read)
        return

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


@dataclass(frozen=True)
class BlockInputs:
    """The arguments one block received in a pass: its input residual (the first positional
    one, in every architecture the bridge supports), and what the architecture derives from the
    whole sequence (attention mask, rotary position embeddings, Gemma's sliding-window masks)."""

    args: tuple
    kwargs: dict[str, Any]


@contextmanager
def record_block_inputs(model: SubjectModel, layers: Iterable[int]) -> Iterator[dict[int, BlockInputs]]:
    """Record the inputs of blocks ``layers`` in the passes run inside the context (the last
    pass wins), for ``resume``."""
    inputs: dict[int, BlockInputs] = {}

    def recorder(layer: int):
        def record(block, args, kwargs):  # noqa: ARG001 - torch passes the module
            if not args:
                raise NotImplementedError(f"block {layer} was called without a positional residual: "
                                          "passes of this architecture cannot start at a later block")
            inputs[layer] = BlockInputs(args=args, kwargs=kwargs)

        return record

    handles = [model.bridge.blocks[layer].register_forward_pre_hook(recorder(layer), with_kwargs=True)
               for layer in sorted(set(layers))]
    try:
        yield inputs
    finally:
        for handle in handles:
            handle.remove()


def resume(
    model: SubjectModel, inputs: dict[int, BlockInputs], start: int, last: int, hooks: Hooks
) -> Float[Tensor, "batch pos d_model"]:
    """Blocks ``start`` to ``last`` again with ``hooks``, from the inputs a clean pass recorded
    (every block from ``start`` to ``last``): the residual after block ``last`` that a whole pass
    with ``hooks`` gives when the hooks change nothing before block ``start``, without computing
    blocks 0 to ``start - 1`` again. The later blocks' other inputs (masks, positions) depend on
    the tokens only, so the recorded ones hold."""
    import torch

    blocks = model.bridge.blocks
    residual = inputs[start].args[0]
    with torch.inference_mode(), model.bridge.hooks(fwd_hooks=hooks):
        for layer in range(start, last + 1):
            output = blocks[layer](residual, *inputs[layer].args[1:], **inputs[layer].kwargs)
            residual = output[0] if isinstance(output, tuple) else output
    return residual


def final_logits(model: SubjectModel, residual: Float[Tensor, "*rows d_model"]) -> Float[Tensor, "*rows d_vocab"]:
    """Logits from the residual after the last block, as the Hugging Face model's head computes
    them: final norm, unembedding, and the logit soft-capping some architectures apply."""
    import torch

    with torch.inference_mode():
        logits = model.bridge.unembed(model.bridge.ln_final(residual))
        cap = getattr(model.bridge.original_model.config, "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
    return logits
