"""``zero-shot`` (the paper's, default): one Yes/No question per test prompt, scored by balanced
accuracy; and ``logprob-auc``: the same questions, scored threshold-free by the ROC AUC of
P(Yes) where the backend gives logprobs (the LLM cache makes it free next to zero-shot)."""

from __future__ import annotations

from plugins.manager import hookimpl
from plugins.scorers.base import Scorer
from services.classify import (
    ClassifyRequest,
    HeadClassification,
    Judgement,
    classify_requests,
    p_yes,
    parse_answer,
)
from services.llm.schemas import Completion, LLMRequest
from services.score import HeadScore, head_score, rank_auc


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
