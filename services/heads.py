"""Active heads per prompt and heads worth explaining per neuron (docs/method.md step 4).

A head is active on a prompt when its attribution exceeds ``mean + 2·std`` over all candidate
heads of that prompt (std with Bessel's correction, torch's default). A head is worth explaining
when it is active on a fraction of the neuron's prompts within ``[low, high]`` (25-75 %): heads
that are always or never active leave nothing to explain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from services.attribution import Definition, default_definition, head_attributions
from services.errors import InvalidInputError
from services.head_reads import PromptReads
from services.schemas import NeuronRef, TruncatedPrompt

if TYPE_CHECKING:
    from jaxtyping import Bool, Float
    from torch import Tensor

    from services.subject_model import SubjectModel

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
    found = [HeadActivity(head=HeadRef(layer=l, head=h), active_fraction=float(fraction[l, h])) for l, h in keep]
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
    """Steps 5 and 6 for one neuron: scores, active heads per prompt, heads worth explaining."""
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
            active=[HeadRef(layer=l, head=h) for l, h in mask.nonzero().tolist()],
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
