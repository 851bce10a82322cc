"""The Hugging Face model the bridge holds, on fused attention, for MLP activations only.

The scan and truncation read ``hook_post`` and nothing else, yet a bridge forward runs its own
eager attention, which builds full score matrices to expose ``hook_pattern``. ``FastForward`` is
a second module tree of the same Hugging Face class, built on the meta device with SDPA
attention (on CUDA, torch picks its fused flash or memory-efficient kernel), whose parameters
and buffers are the bridge's own tensors: no copy of the weights, and it computes with exactly
the weights compatibility mode processed. ``hook_post`` is the input of each MLP's output
projection (``down_proj`` of a gated MLP, ``c_proj`` of GPT-2's), read by a plain forward
pre-hook; the deepest read stops the pass.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from jaxtyping import Int
    from torch import Tensor
    from transformer_lens.model_bridge import TransformerBridge

    from services.activations import PostReader

log = logging.getLogger(__name__)

ATTENTION = "sdpa"


class NoFastPath(Exception):
    """The architecture cannot be rebuilt over the bridge's tensors; the bridge serves instead."""


class _Stop(Exception):
    """Raised by the deepest read: nothing after it is needed."""


@dataclass(frozen=True)
class FastForward:
    """The base model (no LM head) on SDPA attention, and per layer the module whose input is
    that layer's ``hook_post``."""

    model: torch.nn.Module
    mlp_out: list[torch.nn.Module]

    def run_mlp_post(self, tokens: Int[Tensor, "batch pos"], layers: Iterable[int], read: PostReader) -> None:
        """Forward ``tokens`` until ``read(layer, post)`` has run for each of ``layers``."""
        import torch

        layers = sorted(set(layers))

        def reader(layer: int):
            def hook(module, args) -> None:  # noqa: ARG001 - torch passes the module
                read(layer, args[0])
                if layer == layers[-1]:
                    raise _Stop

            return hook

        handles = [self.mlp_out[layer].register_forward_pre_hook(reader(layer)) for layer in layers]
        try:
            with torch.inference_mode():
                self.model(input_ids=tokens, use_cache=False)
        except _Stop:
            pass
        else:
            raise RuntimeError(f"the forward pass ended without reaching layer {layers[-1]}'s MLP")
        finally:
            for handle in handles:
                handle.remove()


def build_fast_forward(bridge: TransformerBridge) -> FastForward:
    """The bridge's Hugging Face model rebuilt on SDPA over the bridge's tensors, or ``NoFastPath``
    saying why not (an unknown class, a class without SDPA, a tensor or MLP projection not found).
    """
    import torch
    from transformers import AutoModelForCausalLM

    held = bridge.original_model
    config = copy.deepcopy(held.config)
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, attn_implementation=ATTENTION)
    except (ValueError, ImportError, NotImplementedError) as error:
        raise NoFastPath(f"{type(held).__name__} cannot be built with {ATTENTION} attention: {error}") from error

    # The bridge wraps each Hugging Face module as ``<wrapper>._original_component``: without that
    # segment, a name of the bridge's tree is the name in a plain model of the class.
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in [*held.named_parameters(remove_duplicate=False), *held.named_buffers(remove_duplicate=False)]:
        tensors.setdefault(name.replace("._original_component", ""), tensor)
    wanted = [name for name, _ in [*model.named_parameters(remove_duplicate=False),
                                   *model.named_buffers(remove_duplicate=False)]]
    missing = [name for name in wanted if name not in tensors]
    if missing:
        raise NoFastPath(f"{type(held).__name__}: the bridge holds no tensor for {missing[:3]}")
    for name in wanted:
        owner, _, attribute = name.rpartition(".")
        module = model.get_submodule(owner)
        tensor = tensors[name]
        if isinstance(getattr(module, attribute), torch.nn.Parameter) and not isinstance(tensor, torch.nn.Parameter):
            tensor = torch.nn.Parameter(tensor, requires_grad=False)
        setattr(module, attribute, tensor)
    model.eval()

    by_weight = {id(module.weight): module for module in model.modules()
                 if isinstance(getattr(module, "weight", None), torch.Tensor)}
    mlp_out = []
    for layer, block in enumerate(bridge.blocks):
        out = getattr(getattr(block, "mlp", None), "out", None)
        weight = getattr(getattr(out, "original_component", None), "weight", None)
        if id(weight) not in by_weight:
            raise NoFastPath(f"{type(held).__name__}: no MLP output projection found in layer {layer}")
        mlp_out.append(by_weight[id(weight)])
    return FastForward(model=model.base_model, mlp_out=mlp_out)


def fast_forward_or_none(bridge: TransformerBridge) -> FastForward | None:
    """``build_fast_forward``, or None with one log line saying the bridge serves instead."""
    try:
        return build_fast_forward(bridge)
    except NoFastPath as reason:
        log.warning("no fast forward path (%s): the scan and truncation run on the bridge", reason)
        return None
