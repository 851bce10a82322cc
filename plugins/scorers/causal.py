"""``causal``: do the test prompts the explanation predicts active show a larger drop of the
neuron's activation when the head is ablated than those it predicts inactive?

The judge answers the zero-shot questions (the same requests, so next to ``zero-shot`` they
cost nothing new); the score is the probability that a random predicted-active prompt has a
larger ablation effect than a random predicted-inactive one (0.5: the predictions carry no
causal information). The effects are measured on the subject model with the test prompts.
"""

from __future__ import annotations

from lookups import HeadClassification, HeadScore, head_score, hookimpl, rank_auc
from plugins.scorers.zero_shot import ZeroShot


class Causal(ZeroShot):
    name = "causal"
    description = "Zero-shot predictions scored by the head's ablation effect: AUC of predicted-active over predicted-inactive"

    def score(self, head: HeadClassification) -> HeadScore:
        counts = head_score(head).model_copy(update={"skipped": None})
        if any(r.effect is None for r in head.results):
            return counts.model_copy(update={"score": None, "skipped": "no ablation effects on the test "
                                             "prompts (campaigns measure them)"})
        active = [r.effect for r in head.results if r.answer == "yes"]
        inactive = [r.effect for r in head.results if r.answer == "no"]
        if not active or not inactive:
            return counts.model_copy(update={"score": None, "skipped": "the judge predicted one class only"})
        return counts.model_copy(update={"score": rank_auc(active, inactive)})


@hookimpl
def register_scorers(register) -> None:
    register(Causal())
