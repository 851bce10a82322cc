"""``zero-shot`` (the paper's, default): one Yes/No question per test prompt, scored by balanced
accuracy; and ``logprob-auc``: the same questions, scored threshold-free by the ROC AUC of
P(Yes) where the backend gives logprobs (the LLM cache makes it free next to zero-shot).
P(Yes) comes from the first output token's logprobs. The requests name Yes and No as their
choices: a backend that ``constrains_choices`` answers one of them by construction (the prompt is
the paper's, unchanged); the others' answers are parsed, and those neither Yes nor No are counted
unparseable."""

from __future__ import annotations

import math
import re

from lookups import (
    Answer,
    ClassifyRequest,
    Completion,
    HeadClassification,
    HeadScore,
    Judgement,
    LLMRequest,
    PromptTemplate,
    Scorer,
    head_score,
    hookimpl,
    rank_auc,
    share_prefix,
)

_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
CHOICES = ("Yes", "No")


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


def classify_requests(template: PromptTemplate, request: ClassifyRequest) -> list[LLMRequest]:
    """The paper's question, one request per test prompt, in order, so a head's prompts share
    the explanation prefix (marked for provider prompt caching)."""
    return share_prefix([
        LLMRequest(prompt=template.render_classifier(request.explanation, p.text + request.token),
                   max_tokens=template.classify_max_tokens, logprobs=True, purpose="classify",
                   template_version=template.version, choices=CHOICES)
        for p in request.prompts
    ])


class ZeroShot(Scorer):
    name = "zero-shot"
    description = "The paper's: one Yes/No question per test prompt; balanced accuracy"

    def requests(self, template, request: ClassifyRequest) -> list[LLMRequest]:
        return classify_requests(template, request)

    def judgements(self, request: ClassifyRequest, answers: list[Completion]) -> list[Judgement]:
        return [Judgement(answer=parse_answer(a.text), p_yes=p_yes(a.top_logprobs), raw=a.text)
                for a in answers]


class LogprobAUC(ZeroShot):
    name = "logprob-auc"
    description = "The zero-shot questions scored by the ROC AUC of P(Yes) (needs logprobs)"

    def score(self, head: HeadClassification) -> HeadScore:
        counts = head_score(head)
        if counts.skipped:
            return counts
        active = [r.p_yes for r in head.results if r.active and r.p_yes is not None]
        inactive = [r.p_yes for r in head.results if r.active is False and r.p_yes is not None]
        if not active or not inactive:
            return counts.model_copy(update={"score": None, "skipped": "the judge gave no Yes/No "
                                             "logprobs for one of the classes"})
        return counts.model_copy(update={"score": rank_auc(active, inactive)})


@hookimpl
def register_scorers(register) -> None:
    register(ZeroShot())
    register(LogprobAUC())
