"""Ablation check (docs/method.md step 9): does knocking out a head hurt the neuron's token more
where the head was found active?

The head is ablated by zeroing its value vectors, which makes its output ``z_h`` zero at every
position (``z_h`` is an attention-weighted sum of ``v_h``). We zero ``blocks.l.attn.hook_z[..., h, :]``
rather than ``hook_v``: with grouped KV heads (SmolLM2: 9 query heads share 3 KV heads) zeroing
``hook_v`` would knock out every query head that shares the KV head. The effect is the drop in the
softmax probability of the neuron's token at the last position; active and inactive prompts are
compared with a two-sample Kolmogorov-Smirnov test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from lookups import InvalidInputError
from services.activations import (
    bos_id,
    final_logits,
    forward_through,
    length_batches,
    pad_id,
    pad_right,
    record_block_inputs,
    resume,
)
from services.attribution import HeadRef, NeuronAttribution, check_head
from services.neurons import congruence
from services.scan import DEFAULT_MAX_BATCH, DEFAULT_TOKEN_BUDGET
from services.schemas import NeuronRef

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

    from services.subject_model import SubjectModel


class AblatedPrompt(BaseModel):
    text: str
    active: bool = Field(description="Whether the head is active on this prompt (step 4 criterion).")
    p_clean: float
    p_ablated: float
    drop: float = Field(description="p_clean - p_ablated of the neuron's token at the last position.")


class KSResult(BaseModel):
    statistic: float
    pvalue: float
    n_active: int
    n_inactive: int


class HeadAblation(BaseModel):
    """One (neuron, head) pair: per-prompt probability drops, split by the head's activity."""

    neuron: NeuronRef
    head: HeadRef
    token: str
    token_id: int
    definition: str
    prompts: list[AblatedPrompt]
    ks: KSResult | None = Field(description="Active vs inactive drops; None when a class is empty.")


def neuron_token(model: SubjectModel, neuron: NeuronRef) -> tuple[int, str]:
    """The token a neuron's output weights write most (docs/method.md step 1): its id and text."""
    bridge = model.bridge
    w_out = bridge.blocks[neuron.layer].mlp.W_out[neuron.index : neuron.index + 1].detach()
    _, token_ids = congruence(w_out, bridge.W_U.detach())
    token_id = int(token_ids[0])
    return token_id, model.tokenizer.decode([token_id])


def token_probability_drops(
    model: SubjectModel,
    heads: Sequence[HeadRef],
    token_id: int,
    prompts: Sequence[Sequence[int]],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> tuple[Float[Tensor, " prompt"], dict[HeadRef, Float[Tensor, " prompt"]]]:
    """Probability of ``token_id`` at the last token of each ``[BOS] + prompt``: clean, and per
    head with that head ablated. One clean pass per batch serves every head: it records the
    block inputs, and each head's pass starts at the head's block from there."""
    import torch

    if not prompts:
        raise InvalidInputError("give at least one prompt to ablate on")
    bos, pad = bos_id(model.tokenizer), pad_id(model.tokenizer)
    sequences = [[bos, *p] for p in prompts]
    clean = torch.empty(len(sequences))
    ablated = {head: torch.empty(len(sequences)) for head in heads}
    last_block = len(model.bridge.blocks) - 1
    first = min((head.layer for head in heads), default=last_block)

    def probability(residual: Tensor) -> Tensor:
        return final_logits(model, residual).float().softmax(dim=-1)[:, token_id].cpu()

    for batch in length_batches([len(s) for s in sequences], token_budget, max_batch):
        tokens, lengths = pad_right((sequences[i] for i in batch), pad, model.device)
        rows, last = torch.arange(len(batch), device=model.device), lengths - 1
        where = torch.tensor(batch)
        out: list[Tensor] = []

        def keep(residual, hook):  # noqa: ARG001 - TransformerLens passes the hook point
            out.append(residual[rows, last])

        with record_block_inputs(model, range(first, last_block + 1)) as inputs:
            forward_through(model, tokens, [(f"blocks.{last_block}.hook_out", keep)], last_block)
        clean[where] = probability(out[0])
        for head in heads:
            residual = resume(model, inputs, head.layer, last_block, [zero_head(head)])
            ablated[head][where] = probability(residual[rows, last])
    return clean, ablated


def zero_head(head: HeadRef) -> tuple[str, Callable[..., Tensor]]:
    """The hook that zeroes one head's output at every position, on its block's ``hook_z``."""
    def hook(z, hook):  # noqa: ARG001 - TransformerLens passes the hook point
        z[:, :, head.head] = 0.0
        return z

    return f"blocks.{head.layer}.attn.hook_z", hook


def activation_drops(
    model: SubjectModel,
    neuron: NeuronRef,
    heads: Sequence[HeadRef],
    prompts: Sequence[Sequence[int]],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> dict[HeadRef, Float[Tensor, " prompt"]]:
    """Per head, the neuron's activation at the last token of each ``[BOS] + prompt``, clean
    minus with that head ablated: the causal effect the ``causal`` scorer ranks. One clean pass
    serves every head (it stops after the neuron's layer and records the block inputs), and each
    head's pass runs from the head's block to the neuron's."""
    import torch

    if not prompts:
        raise InvalidInputError(f"neuron {neuron}: give at least one prompt to ablate on")
    for head in heads:
        check_head(model, neuron, head)
    bos, pad = bos_id(model.tokenizer), pad_id(model.tokenizer)
    sequences = [[bos, *p] for p in prompts]
    drops = {head: torch.empty(len(sequences)) for head in heads}
    first = min((head.layer for head in heads), default=neuron.layer)
    for batch in length_batches([len(s) for s in sequences], token_budget, max_batch):
        tokens, lengths = pad_right((sequences[i] for i in batch), pad, model.device)
        rows, last = torch.arange(len(batch), device=model.device), lengths - 1
        read: list[Tensor] = []

        def keep(post, hook):  # noqa: ARG001 - TransformerLens passes the hook point
            read.append(post[rows, last, neuron.index].float().cpu())

        post = (f"blocks.{neuron.layer}.mlp.hook_post", keep)
        with record_block_inputs(model, range(first, neuron.layer + 1)) as inputs:
            forward_through(model, tokens, [post], neuron.layer)
        clean = read.pop()
        for head in heads:
            resume(model, inputs, head.layer, neuron.layer, [zero_head(head), post])
            drops[head][torch.tensor(batch)] = clean - read.pop()
    return drops


def ks_test(active: Sequence[float], inactive: Sequence[float]) -> KSResult | None:
    """Two-sample KS test of drops on active vs inactive prompts (pool a whole campaign's pairs
    for the paper's figure); None when either side is empty."""
    from scipy.stats import ks_2samp

    if not active or not inactive:
        return None
    result = ks_2samp(list(active), list(inactive))
    return KSResult(
        statistic=float(result.statistic), pvalue=float(result.pvalue),
        n_active=len(active), n_inactive=len(inactive),
    )


def ablate_heads(
    model: SubjectModel, attribution: NeuronAttribution, heads: Sequence[HeadRef]
) -> list[HeadAblation]:
    """Ablate each head on the neuron's attributed prompts (one clean pass shared by all);
    label each prompt by that head's activity."""
    neuron = attribution.neuron
    for head in heads:
        check_head(model, neuron, head)
    if not attribution.prompts:
        raise InvalidInputError(f"neuron {neuron}: no prompts to ablate on")
    token_id, token = neuron_token(model, neuron)
    clean, ablated = token_probability_drops(model, heads, token_id, [p.tokens for p in attribution.prompts])
    found = []
    for head in heads:
        records = [
            AblatedPrompt(text=p.text, active=head in p.active, p_clean=float(c), p_ablated=float(a),
                          drop=float(c - a))
            for p, c, a in zip(attribution.prompts, clean, ablated[head])
        ]
        found.append(HeadAblation(
            neuron=neuron, head=head, token=token, token_id=token_id, definition=attribution.definition,
            prompts=records,
            ks=ks_test([r.drop for r in records if r.active], [r.drop for r in records if not r.active])))
    return found


def pooled_ks(ablations: Sequence[HeadAblation]) -> KSResult | None:
    """The KS test over every ablated head's prompts at once: active drops against inactive."""
    drops = [(p.active, p.drop) for a in ablations for p in a.prompts]
    return ks_test([d for active, d in drops if active], [d for active, d in drops if not active])
