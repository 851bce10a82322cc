"""Head attribution (docs/method.md step 4): how much each earlier head pushes a neuron, per prompt.

For a neuron (layer ``L``, index ``i``) and every head ``h`` in layers ``< L``, at the prompt's
last position::

    attr_h = (z_h @ W_O^h) / scale_L · d

where ``scale_L`` is layer L's ln2 scale at that position (the LN weight is folded into ``W_in``,
so the scale is all that is left of the normalisation) and ``d`` is the neuron's input direction:

- ``"paper"``: ``d = W_in[L][:, i]`` (the paper's definition; only for non-gated MLPs).
- ``"linearised"``: ``d`` = gradient of ``hook_post[i]`` with respect to the MLP's normalised
  input at this prompt, the scale held constant. Gated MLPs (``act(x·w_gate) * (x·w_in)``) have
  no single input direction, so this is their definition; for a GELU MLP it is
  ``act'(pre_i) · W_in[:, i]``, i.e. the paper's score times ``act'(pre_i)``.

Batched over prompts of similar length; the forward pass stops after block ``L`` and keeps only
``hook_z`` at the last position of each layer and a few scalars of layer ``L``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from services.activations import bos_id, length_batches, pad_id, pad_right
from services.errors import InvalidInputError
from services.scan import DEFAULT_MAX_BATCH, DEFAULT_TOKEN_BUDGET, check_neurons
from services.schemas import NeuronRef

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

    from services.subject_model import SubjectModel

Definition = Literal["paper", "linearised"]


def default_definition(model: SubjectModel) -> Definition:
    """The paper's definition where it exists (one input direction), else the linearised one."""
    return "linearised" if model.info.gated_mlp else "paper"


def check_attribution_input(
    model: SubjectModel, neuron: NeuronRef, prompts: Sequence[Sequence[int]], definition: Definition
) -> None:
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
    if definition not in ("paper", "linearised"):
        raise InvalidInputError(f"definition must be 'paper' or 'linearised', got {definition!r}")
    if definition == "paper" and model.info.gated_mlp:
        raise InvalidInputError(
            f"definition 'paper' needs a single W_in direction; model {model.info.name!r} has a "
            "gated MLP: use 'linearised'"
        )


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
    import torch

    definition = definition or default_definition(model)
    check_attribution_input(model, neuron, prompts, definition)
    bridge, layer, index = model.bridge, neuron.layer, neuron.index
    device = model.device
    cfg = bridge.cfg
    # Per-block weights: the bridge's stacked ``W_O``/``W_in`` copy every layer on each access.
    w_o = torch.stack([bridge.blocks[l].attn.W_O.detach() for l in range(layer)])  # (l, h, d_head, d_model)
    mlp = bridge.blocks[layer].mlp
    w_in = mlp.W_in[:, index].detach()  # (d_model,)
    w_gate = mlp.W_gate[:, index].detach() if model.info.gated_mlp else None
    paper_readout = torch.einsum("lhdm,m->lhd", w_o, w_in)  # W_O^h projected on W_in[:, i]

    bos, pad = bos_id(model.tokenizer), pad_id(model.tokenizer)
    sequences = [[bos, *p] for p in prompts]
    out = torch.empty((len(sequences), layer, cfg.n_heads), dtype=torch.float32)
    for batch in length_batches([len(s) for s in sequences], token_budget, max_batch):
        tokens, lengths = pad_right((sequences[i] for i in batch), pad, device)
        rows, last = torch.arange(len(batch), device=device), lengths - 1
        z = torch.empty((len(batch), layer, cfg.n_heads, cfg.d_head), dtype=w_o.dtype, device=device)
        kept: dict[str, Tensor] = {}

        def keep_z(source, hook):
            z[:, int(hook.name.split(".")[1])] = source[rows, last]

        def keep_last(source, hook):
            kept[hook.name.rsplit(".", 1)[-1]] = source[rows, last]

        def keep_neuron(source, hook):
            kept[hook.name.rsplit(".", 1)[-1]] = source[rows, last, index]

        hooks = [(f"blocks.{l}.attn.hook_z", keep_z) for l in range(layer)]
        hooks.append((f"blocks.{layer}.ln2.hook_scale", keep_last))
        if definition == "linearised":
            hooks.append((f"blocks.{layer}.mlp.hook_pre", keep_neuron))
            if w_gate is not None:
                hooks.append((f"blocks.{layer}.mlp.hook_pre_linear", keep_neuron))
        with torch.inference_mode():
            bridge.run_with_hooks(tokens, fwd_hooks=hooks, stop_at_layer=layer + 1, return_type=None)

        scale = kept["hook_scale"].reshape(len(batch), 1, 1)
        if definition == "paper":
            scores = torch.einsum("blhd,lhd->blh", z, paper_readout)
        else:
            value, slope = _activation_and_slope(model, kept["hook_pre"])
            if w_gate is None:  # d(act(x·w_in))/dx = act'(pre) w_in
                scores = torch.einsum("blhd,lhd,b->blh", z, paper_readout, slope)
            else:  # d(act(x·w_gate) (x·w_in))/dx = act'(g) u w_gate + act(g) w_in
                direction = (slope * kept["hook_pre_linear"])[:, None] * w_gate + value[:, None] * w_in
                scores = torch.einsum("blhd,lhdm,bm->blh", z, w_o, direction)
        out[torch.tensor(batch)] = (scores / scale).float().cpu()
    return out
