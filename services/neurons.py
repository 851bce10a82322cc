"""Next-token neurons (docs/method.md step 1): MLP neurons whose output weights write one token.

``S = W_out[L] @ W_U`` has one row per neuron; a neuron's congruence is the row's maximum and
its token the argmax. Only neurons whose token is a whole word are kept, ranked by congruence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lookups import InvalidInputError
from services.scan import check_neurons
from services.schemas import NeuronRef, NextTokenNeuron

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from services.subject_model import SubjectModel

# Entries of S computed at once (128 MB in float32): Gemma 3's 262,144-token vocabulary would
# otherwise take 2 GB per layer (2,048 neurons); this is 128 rows there, 682 for SmolLM2.
CHUNK_ENTRIES = 1 << 25


def is_whole_word(token: str) -> bool:
    """A leading space, then at least two characters, all alphabetic (e.g. ' right')."""
    return token.startswith(" ") and len(token) >= 3 and token[1:].isalpha()


def check_layers(model: SubjectModel, layers: Sequence[int]) -> None:
    n_layers = model.info.n_layers
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise InvalidInputError(
            f"layer(s) {bad} out of range: model {model.info.name!r} has layers 0..{n_layers - 1}"
        )
    if not layers:
        raise InvalidInputError("give at least one layer")


def default_layers(model: SubjectModel, count: int = 3) -> list[int]:
    """The paper's choice: the last three layers."""
    return list(range(max(0, model.info.n_layers - count), model.info.n_layers))


def congruence(
    w_out: Float[Tensor, "d_mlp d_model"], w_u: Float[Tensor, "d_model vocab"]
) -> tuple[Float[Tensor, " d_mlp"], Int[Tensor, " d_mlp"]]:
    """Per neuron, the maximum of ``w_out @ w_u`` over the vocabulary and its argmax."""
    import torch

    rows = max(1, CHUNK_ENTRIES // w_u.shape[1])
    values, indices = [], []
    with torch.no_grad():
        for start in range(0, w_out.shape[0], rows):
            best = (w_out[start : start + rows] @ w_u).max(dim=-1)
            values.append(best.values)
            indices.append(best.indices)
    return torch.cat(values).float().cpu(), torch.cat(indices).cpu()


def _layer_congruence(model: SubjectModel, layer: int):
    bridge = model.bridge  # the block's own weight: bridge.W_out would stack every layer first
    return congruence(bridge.blocks[layer].mlp.W_out.detach(), bridge.W_U.detach())


def next_token_neurons(
    model: SubjectModel, layers: Sequence[int], per_layer: int = 20
) -> list[NextTokenNeuron]:
    """The ``per_layer`` most congruent whole-word neurons of each layer, best first."""
    check_layers(model, layers)
    if per_layer < 1:
        raise InvalidInputError(f"per_layer must be at least 1, got {per_layer}")
    tokenizer = model.tokenizer
    found: list[NextTokenNeuron] = []
    for layer in layers:
        values, token_ids = _layer_congruence(model, layer)
        kept = []
        for neuron in values.argsort(descending=True).tolist():
            token = tokenizer.decode([int(token_ids[neuron])])
            if is_whole_word(token):
                kept.append(
                    NextTokenNeuron(
                        layer=layer,
                        neuron=neuron,
                        token=token,
                        token_id=int(token_ids[neuron]),
                        congruence=float(values[neuron]),
                    )
                )
                if len(kept) == per_layer:
                    break
        found.extend(kept)
    return found


def describe_neurons(model: SubjectModel, neurons: Sequence[NeuronRef]) -> list[NextTokenNeuron]:
    """Token and congruence of explicitly chosen neurons, in the order given."""

    check_neurons(model, neurons)
    by_layer = {layer: _layer_congruence(model, layer) for layer in {n.layer for n in neurons}}
    return [
        NextTokenNeuron(
            layer=n.layer,
            neuron=n.index,
            token=model.tokenizer.decode([int(by_layer[n.layer][1][n.index])]),
            token_id=int(by_layer[n.layer][1][n.index]),
            congruence=float(by_layer[n.layer][0][n.index]),
        )
        for n in neurons
    ]


def random_neurons(
    model: SubjectModel, layers: Sequence[int], per_layer: int = 20, seed: int = 0
) -> list[NextTokenNeuron]:
    """The random-neuron baseline: uniformly drawn neurons of the same layers, no filter."""
    check_layers(model, layers)
    d_mlp = model.info.d_mlp
    if not 1 <= per_layer <= d_mlp:
        raise InvalidInputError(f"per_layer must be in 1..{d_mlp}, got {per_layer}")
    rng = random.Random(seed)
    found = []
    for layer in layers:
        values, token_ids = _layer_congruence(model, layer)
        for neuron in sorted(rng.sample(range(d_mlp), per_layer)):
            found.append(
                NextTokenNeuron(
                    layer=layer,
                    neuron=neuron,
                    token=model.tokenizer.decode([int(token_ids[neuron])]),
                    token_id=int(token_ids[neuron]),
                    congruence=float(values[neuron]),
                )
            )
    return found
