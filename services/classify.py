"""Step 9: a judge classifies held-out prompts from an explanation alone.

How the judge is asked is a scorer plugin (``lookups scorers``): the paper's zero-shot question
per prompt, several prompts per call (detection), ... An answer is Yes, No or unparseable;
unparseable is kept as such (never folded into No) so a judge that rambles cannot look like one
that says No. P(Yes) comes from first-token logprobs.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.llm.client import LLMClient
from services.llm.schemas import CallRecord, LLMRequest

if TYPE_CHECKING:
    from plugins.scorers.base import Scorer

Answer = Literal["yes", "no", "unparseable"]
_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


class TestPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest class

    text: str = Field(min_length=1, description="The truncated prompt, without the token.")
    active: bool | None = Field(default=None, description="Ground truth, when known.")
    effect: float | None = Field(default=None, description="Drop of the neuron's activation when the "
                                 "head is ablated, where measured (the causal scorer needs it).")


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    neuron: str | None = None
    head: str | None = None
    token: str = Field(default="", description="Appended to each prompt, as in the paper.")
    explanation: str = Field(min_length=1)
    prompts: list[TestPrompt] = Field(min_length=1)


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
    calls: list[CallRecord] = Field(description="The judge's calls (one per prompt for zero-shot, fewer for detection).")


def parse_answer(text: str) -> Answer:
    match = _ANSWER.match(text)
    return match.group(1).lower() if match else "unparseable"  # type: ignore[return-value]


def p_yes(top_logprobs: dict[str, float] | None) -> float | None:
    """P(Yes) / (P(Yes) + P(No)) over first-token spellings ('Yes', ' yes', ...); None if neither shows."""
    if not top_logprobs:
        return None
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in top_logprobs.items():
        word = token.strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else None


def classify_requests(template, request: ClassifyRequest) -> list[LLMRequest]:
    """The paper's question, one request per test prompt, in order, so a head's prompts share
    the explanation prefix."""
    return [
        LLMRequest(prompt=template.render_classifier(request.explanation, p.text + request.token),
                   max_tokens=template.classify_max_tokens, logprobs=True, purpose="classify",
                   template_version=template.version)
        for p in request.prompts
    ]


def classify(client: LLMClient, scorer: Scorer, template, request: ClassifyRequest) -> HeadClassification:
    responses = client.map(scorer.requests(template, request))
    judgements = scorer.judgements(request, [r.completion for r in responses])
    return HeadClassification(
        neuron=request.neuron, head=request.head, explanation=request.explanation,
        scorer=scorer.name, scorer_version=scorer.version(template),
        template=template.name, template_version=template.version,
        backend=client.backend.name, model=client.backend.model,
        results=[Classification(prompt=p.text, active=p.active, effect=p.effect, **j.model_dump())
                 for p, j in zip(request.prompts, judgements)],
        calls=[r.record for r in responses],
    )
