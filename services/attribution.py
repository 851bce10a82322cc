"""Head attribution (docs/method.md step 4): how much each earlier head pushes a neuron, per
prompt; which heads are active on each prompt; which heads are worth explaining.

For a neuron (layer ``L``, index ``i``) and every head ``h`` in layers ``< L``, at the prompt's
last position::

    attr_h = (z_h @ W_O^h) / scale_L · d

where ``scale_L`` is layer L's ln2 scale at that position (the LN weight is folded into ``W_in``,
so the scale is all that is left of the normalisation) and ``d`` is the neuron's input direction.
Blocks that normalise the attention output before the residual add (Gemma's post-attention
RMSNorm) pass each head's result through that norm first, linearised the same way: divided by
its measured scale, times its weight. Either way a head's score is linear in ``z_h``, and the
heads' shares of the neuron's input plus the other terms reproduce the measured input
(``head_contributions``). The direction ``d``:

- ``"paper"``: ``d = W_in[L][:, i]`` (the paper's definition; only for non-gated MLPs).
- ``"linearised"``: ``d`` = gradient of ``hook_post[i]`` with respect to the MLP's normalised
  input at this prompt, the scale held constant. Gated MLPs (``act(x·w_gate) * (x·w_in)``) have
  no single input direction, so this is their definition; for a GELU MLP it is
  ``act'(pre_i) · W_in[:, i]``, i.e. the paper's score times ``act'(pre_i)``.

Batched over prompts of similar length; the forward pass stops after block ``L`` and keeps only
``hook_z`` at the last position of each layer and a few scalars of layer ``L``.

A head is active on a prompt when its attribution exceeds ``mean + 2·std`` over all candidate
heads of that prompt (std with Bessel's correction, torch's default). A head is worth explaining
when it is active on a fraction of the neuron's prompts within ``[low, high]`` (25-75 %): heads
that are always or never active leave nothing to explain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from lookups import InvalidInputError
from services.activations import Hooks, bos_id, forward_through, length_batches, pad_id, pad_right
from services.head_reads import PromptReads
from services.scan import DEFAULT_MAX_BATCH, DEFAULT_TOKEN_BUDGET, check_neurons
from services.schemas import NeuronRef, TruncatedPrompt

if TYPE_CHECKING:
    from jaxtyping import Bool, Float
    from torch import Tensor

    from services.subject_model import SubjectModel

Definition = Literal["paper", "linearised"]


def default_definition(model: SubjectModel) -> Definition:
    """The paper's definition where it exists (one input direction), else the linearised one."""
    return "linearised" if model.info.gated_mlp else "paper"


def check_attribution_input(
    model: SubjectModel, neuron: NeuronRef, prompts: Sequence[Sequence[int]], definition: Definition
) -> None:
    check_prompts(model, neuron, prompts)
    if definition not in ("paper", "linearised"):
        raise InvalidInputError(f"definition must be 'paper' or 'linearised', got {definition!r}")
    if definition == "paper" and model.info.gated_mlp:
        raise InvalidInputError(
            f"definition 'paper' needs a single W_in direction; model {model.info.name!r} has a "
            "gated MLP: use 'linearised'"
        )


def check_prompts(model: SubjectModel, neuron: NeuronRef, prompts: Sequence[Sequence[int]]) -> None:
    check_neurons(model, [neuron])
    if neuron.layer < 1:
        raise InvalidInputError(
            f"neuron {neuron}: layer must be in 1..{model.info.n_layers - 1} for head attribution "
            "(layer 0 has no earlier heads)"
        )
    if not prompts:
        raise InvalidInputError(f"neuron {neuron}: give at least one prompt to attribute")
    if any(len(p) == 0 for p in prompts):
        raise InvalidInputError(f"neuron {neuron}: every prompt needs at least one token")


def _activation_and_slope(model: SubjectModel, pre: Float[Tensor, " batch"]):
    """``act(pre)`` and ``act'(pre)`` elementwise, with the model's own activation function."""
    import torch
    from transformer_lens.utilities import SUPPORTED_ACTIVATIONS

    act_name = model.bridge.cfg.act_fn
    if act_name not in SUPPORTED_ACTIVATIONS:
        raise InvalidInputError(f"activation {act_name!r} of model {model.info.name!r} is not supported")
    act = SUPPORTED_ACTIVATIONS[act_name]
    with torch.enable_grad():
        x = pre.detach().clone().requires_grad_(True)
        value = act(x)
        (slope,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), slope


@dataclass
class HeadContributions:
    """Each head's share of the neuron's MLP inputs at the last position, and the inputs as
    measured (``hook_pre``, then for gated MLPs ``hook_pre_linear``; see ``input_directions``)."""

    heads: Float[Tensor, "prompt layer head input"]
    measured: Float[Tensor, "prompt input"]


def input_directions(model: SubjectModel, neuron: NeuronRef) -> Float[Tensor, "d_model input"]:
    """The weights the neuron reads its normalised MLP input with. Input 0 gives ``hook_pre``, the
    pre-activation the nonlinearity acts on: ``W_gate[:, i]`` for a gated MLP (SwiGLU, GeGLU),
    ``W_in[:, i]`` otherwise; a gated MLP's input 1 is its linear partner ``W_in[:, i]``
    (``hook_pre_linear``)."""
    import torch

    mlp = model.bridge.blocks[neuron.layer].mlp
    weights = [mlp.W_gate, mlp.W_in] if model.info.gated_mlp else [mlp.W_in]
    return torch.stack([w[:, neuron.index].detach() for w in weights], dim=1)


def post_attention_norm(block):
    """The RMSNorm some blocks apply to the attention output before adding it to the residual
    stream (Gemma 2/3: ``post_attention_layernorm``, ``ln1_post``), or None. Its weight is not
    folded (its scale depends on all heads together), so attribution divides by its measured
    scale and multiplies by its weight, as it does for ln2."""
    return block.ln1_post if hasattr(block, "ln1_post") else None


def _head_readout(block, directions: Float[Tensor, "d_model input"]) -> Float[Tensor, "head d_head input"]:
    """``W_O^h`` (times the post-attention norm's weight, where there is one) onto the directions."""
    w_o = block.attn.W_O.detach()
    norm = post_attention_norm(block)
    if norm is not None:
        w_o = w_o * ((1.0 + norm.weight) if norm.uses_weight_offset else norm.weight).detach()
    return w_o @ directions


def head_contributions(
    model: SubjectModel,
    neuron: NeuronRef,
    prompts: Sequence[Sequence[int]],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> HeadContributions:
    """For every head in layers ``< neuron.layer``, at the last token of each ``[BOS] + prompts[p]``:
    its result ``z_h W_O^h`` (through the post-attention norm where the block has one), divided by
    layer L's ln2 scale, read with ``input_directions``. The norms' scales are frozen at their
    measured values, so this is linear: the heads' shares plus the other writers' (embedding, MLP
    outputs, layer L's heads, biases) add up to the measured inputs exactly."""
    import torch

    check_prompts(model, neuron, prompts)
    bridge, layer = model.bridge, neuron.layer
    device, cfg = model.device, bridge.cfg
    blocks = [bridge.blocks[hl] for hl in range(layer)]
    readout = torch.stack([_head_readout(block, input_directions(model, neuron)) for block in blocks])
    post_norms = [hl for hl, block in enumerate(blocks) if post_attention_norm(block) is not None]
    input_hooks = ["hook_pre", "hook_pre_linear"][: readout.shape[-1]]

    bos, pad = bos_id(model.tokenizer), pad_id(model.tokenizer)
    sequences = [[bos, *p] for p in prompts]
    heads = torch.empty((len(sequences), layer, cfg.n_heads, readout.shape[-1]))
    measured = torch.empty((len(sequences), readout.shape[-1]))
    for batch in length_batches([len(s) for s in sequences], token_budget, max_batch):
        tokens, lengths = pad_right((sequences[i] for i in batch), pad, device)
        rows, last = torch.arange(len(batch), device=device), lengths - 1
        z = torch.empty((len(batch), layer, cfg.n_heads, cfg.d_head), dtype=readout.dtype, device=device)
        post_scale = torch.ones((len(batch), layer), dtype=readout.dtype, device=device)
        kept: dict[str, Tensor] = {}

        def keep_z(source, hook):
            z[:, int(hook.name.split(".")[1])] = source[rows, last]

        def keep_post_scale(source, hook):
            post_scale[:, int(hook.name.split(".")[1])] = source[rows, last, 0]

        def keep_scale(source, hook):
            kept["scale"] = source[rows, last, 0]

        def keep_input(source, hook):
            kept[hook.name.rsplit(".", 1)[-1]] = source[rows, last, neuron.index]

        hooks: Hooks = [(f"blocks.{hl}.attn.hook_z", keep_z) for hl in range(layer)]
        hooks += [(f"blocks.{hl}.ln1_post.hook_scale", keep_post_scale) for hl in post_norms]
        hooks.append((f"blocks.{layer}.ln2.hook_scale", keep_scale))
        hooks += [(f"blocks.{layer}.mlp.{name}", keep_input) for name in input_hooks]
        forward_through(model, tokens, hooks, layer)

        shares = torch.einsum("blhd,lhdk->blhk", z, readout)
        shares = shares / (kept["scale"][:, None] * post_scale)[:, :, None, None]
        where = torch.tensor(batch)
        heads[where] = shares.float().cpu()
        measured[where] = torch.stack([kept[name] for name in input_hooks], dim=1).float().cpu()
    return HeadContributions(heads=heads, measured=measured)


def head_attributions(
    model: SubjectModel,
    neuron: NeuronRef,
    prompts: Sequence[Sequence[int]],
    *,
    definition: Definition | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> Float[Tensor, "prompt layer head"]:
    """``attr[p, l, h]`` for every head in layers ``< neuron.layer``, at the last token of each
    ``[BOS] + prompts[p]`` (prompt token ids without BOS, as in ``TruncatedPrompt.tokens``)."""
    definition = definition or default_definition(model)
    check_attribution_input(model, neuron, prompts, definition)
    found = head_contributions(model, neuron, prompts, token_budget=token_budget, max_batch=max_batch)
    pre = found.heads[..., 0]
    if definition == "paper":
        return pre
    value, slope = _activation_and_slope(model, found.measured[:, 0])
    if not model.info.gated_mlp:  # d act(x·w_in) = act'(pre) (dx·w_in)
        return pre * slope[:, None, None]
    # d(act(x·w_gate) (x·w_in)) = act'(g) u (dx·w_gate) + act(g) (dx·w_in)
    linear = found.measured[:, 1]
    return pre * (slope * linear)[:, None, None] + found.heads[..., 1] * value[:, None, None]


ACTIVE_STDS = 2.0
WORTH_LOW, WORTH_HIGH = 0.25, 0.75


class HeadRef(BaseModel):
    """An attention head by layer and index, written ``LAYER.HEAD`` on the command line."""

    model_config = {"frozen": True}

    layer: int = Field(ge=0)
    head: int = Field(ge=0)

    @classmethod
    def parse(cls, text: str) -> HeadRef:
        try:
            layer, head = text.strip().split(".")
            return cls(layer=int(layer), head=int(head))
        except ValueError as error:
            raise InvalidInputError(f"head {text!r} must look like LAYER.HEAD, e.g. 20.3") from error

    def __str__(self) -> str:
        return f"{self.layer}.{self.head}"


class Prompt(BaseModel):
    """A prompt to attribute: its text and token ids (without BOS); ``TruncatedPrompt`` fits too."""

    doc_id: str | None = None
    text: str
    tokens: list[int] = Field(min_length=1, description="Token ids, without the BOS token.")


class PromptHeads(BaseModel):
    """One prompt's head scores (``scores[layer][head]``, layers below the neuron's)."""

    doc_id: str | None = None
    text: str
    tokens: list[int] = Field(description="Token ids of the prompt, without the BOS token.")
    scores: list[list[float]]
    active: list[HeadRef]


class HeadActivity(BaseModel):
    head: HeadRef
    active_fraction: float


class NeuronAttribution(BaseModel):
    """Head attribution of one neuron over its prompts, and the heads worth explaining."""

    neuron: NeuronRef
    definition: Definition = Field(
        description="'paper': (z_h W_O^h / ln2 scale) · W_in[:, i]; 'linearised': the same "
        "result dotted with d hook_post[i] / d (normalised MLP input) at the prompt."
    )
    active_stds: float
    worth_range: tuple[float, float]
    prompts: list[PromptHeads]
    worth_explaining: list[HeadActivity]
    reads: list[PromptReads] | None = Field(
        default=None, description="Per prompt, what each head worth explaining attends to from the "
        "last position (services.head_reads); campaigns record it for the explainer.")


def active_heads(
    scores: Float[Tensor, "prompt layer head"], stds: float = ACTIVE_STDS
) -> Bool[Tensor, "prompt layer head"]:
    flat = scores.flatten(1)
    threshold = flat.mean(dim=1) + stds * flat.std(dim=1)
    return scores > threshold[:, None, None]


def heads_worth_explaining(
    active: Bool[Tensor, "prompt layer head"], low: float = WORTH_LOW, high: float = WORTH_HIGH
) -> list[HeadActivity]:
    """Heads active on between ``low`` and ``high`` of the prompts, most often active first."""
    if not 0.0 <= low <= high <= 1.0:
        raise InvalidInputError(f"the worth-explaining range must satisfy 0 <= low <= high <= 1, got {low}, {high}")
    fraction = active.float().mean(dim=0)
    keep = ((fraction >= low) & (fraction <= high)).nonzero().tolist()
    found = [HeadActivity(head=HeadRef(layer=hl, head=h), active_fraction=float(fraction[hl, h])) for hl, h in keep]
    return sorted(found, key=lambda a: (-a.active_fraction, a.head.layer, a.head.head))


def attribute_neuron(
    model: SubjectModel,
    neuron: NeuronRef,
    prompts: Sequence[Prompt | TruncatedPrompt],
    *,
    definition: Definition | None = None,
    active_stds: float = ACTIVE_STDS,
    worth_range: tuple[float, float] = (WORTH_LOW, WORTH_HIGH),
) -> NeuronAttribution:
    """Step 4 for one neuron: scores, active heads per prompt, heads worth explaining."""
    definition = definition or default_definition(model)
    scores = head_attributions(model, neuron, [p.tokens for p in prompts], definition=definition)
    active = active_heads(scores, active_stds)
    worth = heads_worth_explaining(active, *worth_range)
    records = [
        PromptHeads(
            doc_id=prompt.doc_id,
            text=prompt.text,
            tokens=prompt.tokens,
            scores=row.tolist(),
            active=[HeadRef(layer=hl, head=h) for hl, h in mask.nonzero().tolist()],
        )
        for prompt, row, mask in zip(prompts, scores, active)
    ]
    return NeuronAttribution(
        neuron=neuron, definition=definition, active_stds=active_stds,
        worth_range=worth_range, prompts=records, worth_explaining=worth,
    )


def check_head(model: SubjectModel, neuron: NeuronRef, head: HeadRef) -> None:
    """A head must exist and sit below the neuron's layer (only those can feed it)."""
    n_heads = model.info.n_heads
    if neuron.layer < 1:
        raise InvalidInputError(f"neuron {neuron}: layer 0 has no earlier heads")
    if not 0 <= head.head < n_heads:
        raise InvalidInputError(f"head {head}: head index {head.head} out of range 0..{n_heads - 1}")
    if not 0 <= head.layer < neuron.layer:
        raise InvalidInputError(
            f"head {head}: layer {head.layer} out of range 0..{neuron.layer - 1} "
            f"(heads must sit below neuron {neuron}'s layer)"
        )
