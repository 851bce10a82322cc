"""What an explainer strategy receives (a head's examples as the GPU side measured them), what
it sends (one ``LLMRequest``), and, for a closed-loop strategy, the rounds it revises from.

A strategy has a name, its own wording, and turns a head's examples into one LLM request and
the answer into an explanation.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lookups.llm import CallRecord, LLMRequest
from lookups.templates import PromptTemplate


class SourceRead(BaseModel):
    """One source token a head attends to from the prompt's last position."""

    position: int = Field(ge=0, description="Index into the prompt's tokens (BOS not counted).")
    offset: int = Field(le=0, description="position - last position: 0 is the last token itself.")
    token: str
    weight: float = Field(ge=0.0, le=1.0, description="Attention weight (BOS included in the softmax).")


class HeadExample(BaseModel):
    """One of the neuron's prompts as the GPU side measured it for this head."""

    model_config = ConfigDict(extra="forbid")

    text: str
    active: bool
    attribution: float = Field(description="The head's attribution score on this prompt.")
    pieces: list[str] = Field(description="The prompt's tokens as text (they concatenate to it).")
    reads: list[SourceRead] = Field(description="Source tokens the head attends to most from the last position.")


class ExplainRequest(BaseModel):
    """Examples are the truncated prompts, without the token: the template appends it."""

    model_config = ConfigDict(extra="forbid")

    neuron: str | None = Field(default=None, description="e.g. '27:1263'")
    head: str | None = Field(default=None, description="e.g. '12.3' (layer.head)")
    token: str = Field(min_length=1, description="The neuron's token, leading space included.")
    active_examples: list[str] = Field(min_length=1)
    inactive_examples: list[str] = Field(default_factory=list)
    examples: list[HeadExample] | None = Field(
        default=None, description="Per-prompt measurements (attribution, reads); campaigns fill "
        "them in, and the contrastive strategy needs them.")


class Probe(BaseModel):
    text: str = Field(description="A document ending just before the neuron's token.")
    predicted_active: bool


class ProbeMeasurement(Probe):
    tokens: int = Field(description="Tokens of the probe (BOS not counted).")
    attribution: float | None = Field(description="The head's attribution at the last token.")
    active: bool | None = Field(description="The step-4 verdict; None when the probe was rejected.")
    rejected: str | None = Field(default=None, description="Why the probe was not run.")


class ProgramExplanation(BaseModel):
    """An explanation as a program: the sentence, the function ``active(text, tokens)``, and how
    well it predicts the training prompts (never the held-out ones). Best of k: the sample kept."""

    sentence: str
    source: str | None = Field(description="The program; None when no answer held one.")
    error: str | None = Field(default=None, description="Why there is no program, or why it does not load.")
    train_accuracy: float | None = Field(description="Balanced accuracy on the training prompts.")
    sample: int = Field(default=0, ge=0, description="Which of the k samples (or agent rounds) was kept.")
    sample_accuracies: list[float | None] = Field(default_factory=list, description="Each sample's "
                                                  "training balanced accuracy.")


class RoundEvaluation(BaseModel):
    """How well one round's explanation predicts what was measured (training prompts and probes)."""

    train_correct: int
    train_total: int
    probe_correct: int
    probe_total: int
    wrong: list[int] | None = Field(default=None, description="Training examples (indices into the "
                                    "request's examples) a program got wrong; programs only.")

    @property
    def accuracy(self) -> float | None:
        total = self.train_total + self.probe_total
        return (self.train_correct + self.probe_correct) / total if total else None


class AgentRound(BaseModel):
    round: int = Field(ge=0)
    explanation: str
    probes: list[Probe]
    raw: str = Field(description="The explainer's whole answer.")
    call: CallRecord
    measurements: list[ProbeMeasurement] | None = None
    evaluation: RoundEvaluation | None = None
    judge_calls: list[CallRecord] = Field(default_factory=list)


class ExplainerStrategy:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Everything the strategy itself says to the LLM: part of its version, with the template's.
    wording: ClassVar[str] = ""
    # A closed-loop strategy proposes probes and revises from their measurements over several
    # rounds (the campaign's agent stage); it implements ``revision`` and ``parse`` too.
    closed_loop: ClassVar[bool] = False
    # A program strategy answers with a sentence and a program (``program``); the campaign
    # samples k answers and keeps the program that best predicts the training prompts.
    programs: ClassVar[bool] = False

    def version(self, template: PromptTemplate) -> str:
        shaping = [self.name, self.wording, template.version]
        return hashlib.sha256(json.dumps(shaping).encode()).hexdigest()[:16]

    def request(self, template: PromptTemplate, request: ExplainRequest) -> LLMRequest:
        raise NotImplementedError

    def finish(self, template: PromptTemplate, answer: str) -> str:
        """The stored explanation from the LLM's answer."""
        return answer.strip()

    def revision(self, template: PromptTemplate, request: ExplainRequest, last: AgentRound) -> LLMRequest:
        """Closed-loop only: the next round's request, from the last round's measurements."""
        raise NotImplementedError

    def parse(self, answer: str, token: str) -> tuple[str, list[Probe]]:
        """Closed-loop only: the explanation and the probes in the LLM's answer."""
        raise NotImplementedError

    def program(self, answer: str) -> tuple[str, str | None, str | None]:
        """Program strategies only: (sentence, program source or None, why there is none)."""
        raise NotImplementedError
