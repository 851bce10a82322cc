"""``probe``: the text-probe ceiling. No LLM: a supervised text classifier, trained per head on
exactly the training prompts and labels the explainer was shown, predicts the held-out prompts.

It answers "how predictable is this head's activity from the prompt text at all?", so a low E
can be told apart: an explainer or judge that misses what a classifier finds, or a head whose
activity text barely predicts. Features: the words of the prompt (binary bag of words) and,
separately, the last words before the firing token (unigrams and bigrams), since a next-token
neuron fires at the prompt's end; scikit-learn's logistic regression with balanced class
weights. Its shuffled control is another head's probe on this head's prompts, like any scorer's.
"""

from __future__ import annotations

from lookups import ClassifyRequest, Completion, Judgement, Scorer, hookimpl

LAST_WORDS = 3
WORDS = r"(?u)\b\w+\b"


def last_words(texts: list[str]) -> list[str]:
    return [" ".join(text.split()[-LAST_WORDS:]) for text in texts]


def text_probe():
    """A fresh, unfitted probe: bag of words + last words, logistic regression."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import FunctionTransformer

    features = make_union(
        CountVectorizer(token_pattern=WORDS, binary=True),
        make_pipeline(FunctionTransformer(last_words),
                      CountVectorizer(token_pattern=WORDS, binary=True, ngram_range=(1, 2))),
    )
    return make_pipeline(features, LogisticRegression(class_weight="balanced", max_iter=1000))


class Probe(Scorer):
    name = "probe"
    description = ("No LLM: a text classifier (bag of words + last words, logistic regression) trained on the "
                   "explainer's training prompts and labels; the ceiling beside every score")
    wording = f"bag-of-words+last-{LAST_WORDS}-words(1,2)|logistic-regression(balanced)"

    def cannot_judge(self, request: ClassifyRequest) -> str | None:
        labels = {p.active for p in request.train or []}
        if None in labels or not labels:
            return "the probe needs the training prompts and their labels (campaigns give them)"
        if len(labels) < 2:
            return "the probe's training labels are all one class"
        return None

    def requests(self, template, request: ClassifyRequest) -> list:
        return []

    def judgements(self, request: ClassifyRequest, answers: list[Completion]) -> list[Judgement]:
        train = request.train or []
        probe = text_probe().fit([p.text for p in train], [bool(p.active) for p in train])
        column = list(probe.classes_).index(True)
        p_active = probe.predict_proba([p.text for p in request.prompts])[:, column]
        return [Judgement(answer="yes" if p >= 0.5 else "no", p_yes=float(p), raw=f"{p:.3f}") for p in p_active]


@hookimpl
def register_scorers(register) -> None:
    register(Probe())
