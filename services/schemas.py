"""Pydantic models for everything the analysis side hands across a boundary (JSON-safe)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class NeuronRef(BaseModel):
    """A neuron by layer and index, written ``LAYER:INDEX`` on the command line."""

    model_config = {"frozen": True}

    layer: int = Field(ge=0)
    index: int = Field(ge=0)

    @classmethod
    def parse(cls, text: str) -> NeuronRef:
        try:
            layer, index = text.strip().split(":")
            return cls(layer=int(layer), index=int(index))
        except ValueError as error:
            raise ValueError(f"neuron {text!r} must look like LAYER:INDEX, e.g. 27:1263") from error

    def __str__(self) -> str:
        return f"{self.layer}:{self.index}"


class NextTokenNeuron(BaseModel):
    """A neuron whose output weights point at one vocabulary token (docs/method.md step 1)."""

    layer: int
    neuron: int
    token: str
    token_id: int
    congruence: float

    @property
    def ref(self) -> NeuronRef:
        return NeuronRef(layer=self.layer, index=self.neuron)


class ContextHit(BaseModel):
    """One document's maximum activation of a neuron and where it happened."""

    doc_id: str
    position: int = Field(description="Token position, counting the prepended BOS as 0.")
    activation: float


class TruncatedPrompt(BaseModel):
    """The shortest context ending at the firing token that keeps the activation (step 3)."""

    doc_id: str
    text: str
    tokens: list[int] = Field(description="Token ids of the prompt, without the BOS token.")
    activation: float
    original_activation: float

    @field_validator("tokens")
    @classmethod
    def _not_empty(cls, tokens: list[int]) -> list[int]:
        if not tokens:
            raise ValueError("a truncated prompt holds at least the firing token")
        return tokens


class NeuronContexts(BaseModel):
    """Top documents of one neuron, and (after truncation) its prompts."""

    neuron: NeuronRef
    hits: list[ContextHit]
    prompts: list[TruncatedPrompt] | None = None


class ItemProgress(BaseModel):
    """What a long work item (a scan shard, the held-out test scan) has done so far: the JSON of
    its work item row's ``progress`` (``services.campaigns.item_progress`` writes it)."""

    unit: str = Field(description="What ``done`` and ``total`` count, e.g. documents.")
    done: int
    total: int
    tokens: int = Field(description="Tokens through the model so far.")
    elapsed_s: float = Field(description="Seconds since the item started computing.")
