"""What a scorer receives (a head's labelled test prompts and an explanation), what it sends
(the judge's requests), and what it returns: one judgement per prompt, then the head's score.

An answer is Yes, No or unparseable; unparseable is kept as such (never folded into No) so a
judge that rambles cannot look like one that says No, and it counts against the judge in both
classes (neither a hit nor a correct rejection).
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from lookups.llm import CallRecord, Completion, LLMRequest
from lookups.templates import PromptTemplate

Answer = Literal["yes", "no", "unparseable"]


class TestPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest class

    text: str = Field(min_length=1, description="The truncated prompt, without the token.")
    active: bool | None = Field(default=None, description="Ground truth, when known.")
    effect: float | None = Field(default=None, description="Drop of the neuron's activation when the "
                                 "head is ablated, where measured (the causal scorer needs it).")
    pieces: list[str] | None = Field(default=None, description="The subject model's tokens as text "
                                     "(they concatenate to the prompt); the program scorer needs them.")


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    neuron: str | None = None
    head: str | None = None
    token: str = Field(default="", description="Appended to each prompt, as in the paper.")
    explanation: str = Field(min_length=1)
    prompts: list[TestPrompt] = Field(min_length=1)
    train: list[TestPrompt] | None = Field(
        default=None, description="The labelled training prompts the explanation was written from (the "
        "explainer's evidence): what a supervised scorer such as 'probe' learns from. Campaigns fill it in.")


class Judgement(BaseModel):
    """What the judge said about one prompt."""

    answer: Answer
    p_yes: float | None
    raw: str


class Classification(Judgement):
    prompt: str
    active: bool | None
    effect: float | None = None


class HeadClassification(BaseModel):
    neuron: str | None
    head: str | None
    explanation: str
    scorer: str = "zero-shot"
    scorer_version: str | None = None
    template: str
    template_version: str
    backend: str
    model: str
    results: list[Classification]
    calls: list[CallRecord] = Field(description="The judge's calls (one per prompt for zero-shot, fewer for "
                                    "detection).")
    skipped: str | None = Field(default=None, description="Why the scorer could not judge this head at all "
                                "(e.g. a probe whose training labels are one class); the head is not scored.")
    constrained: bool | None = Field(default=None, description="Whether the judge's answers were restricted to "
                                     "the question's choices by construction; None when none was asked with choices.")


class HeadScore(BaseModel):
    neuron: str | None
    head: str | None
    score: float | None  # None when skipped
    tp: int
    fn: int
    tn: int
    fp: int
    unparseable: int
    skipped: str | None = None
    ci95: tuple[float, float] | None = Field(default=None, description="95 % interval of the score over "
                                             "resampled test prompts (each class resampled on its own).")

    @property
    def n_active(self) -> int:
        return self.tp + self.fn

    @property
    def n_inactive(self) -> int:
        return self.tn + self.fp


def head_score(head: HeadClassification) -> HeadScore:
    """The paper's balanced accuracy over the labelled prompts; unparseable answers count as
    misses in both classes."""
    counts = {"tp": 0, "fn": 0, "tn": 0, "fp": 0}
    if head.skipped:
        return HeadScore(neuron=head.neuron, head=head.head, score=None, unparseable=0, skipped=head.skipped,
                         **counts)
    unparseable = 0
    labelled = [r for r in head.results if r.active is not None]
    for r in labelled:
        if r.answer == "unparseable":
            unparseable += 1
            counts["fn" if r.active else "fp"] += 1
        elif r.active:
            counts["tp" if r.answer == "yes" else "fn"] += 1
        else:
            counts["tn" if r.answer == "no" else "fp"] += 1
    positives, negatives = counts["tp"] + counts["fn"], counts["tn"] + counts["fp"]
    skipped = None
    if len(labelled) < len(head.results):
        skipped = "some test prompts have no label"
    elif positives == 0 or negatives == 0:
        skipped = "test labels are all one class"
    score = None if skipped else 0.5 * (counts["tp"] / positives + counts["tn"] / negatives)
    return HeadScore(neuron=head.neuron, head=head.head, score=score, unparseable=unparseable,
                     skipped=skipped, **counts)


def rank_auc(positive: list[float], negative: list[float]) -> float:
    """P(a random positive value exceeds a random negative one), ties half (Mann-Whitney U)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(positive, negative).statistic) / (len(positive) * len(negative))


class Scorer:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Everything the scorer itself says to the judge: part of its version, with the template's.
    wording: ClassVar[str] = ""
    # Runs the explanation as a program (``request.explanation`` is its source) on each test
    # prompt's ``pieces``, which campaigns decode with the subject model's tokenizer.
    programs: ClassVar[bool] = False

    def version(self, template: PromptTemplate) -> str:
        shaping = [self.name, self.wording, template.version]
        return hashlib.sha256(json.dumps(shaping).encode()).hexdigest()[:16]

    def requests(self, template: PromptTemplate, request: ClassifyRequest) -> list[LLMRequest]:
        raise NotImplementedError

    def judgements(self, request: ClassifyRequest, answers: list[Completion]) -> list[Judgement]:
        """One judgement per test prompt, in the request's order."""
        raise NotImplementedError

    def cannot_judge(self, request: ClassifyRequest) -> str | None:
        """Why this head cannot be judged at all (then no request is sent); None when it can."""
        return None

    def score(self, head: HeadClassification) -> HeadScore:
        """The paper's balanced accuracy; unparseable answers count against the judge."""
        return head_score(head)
