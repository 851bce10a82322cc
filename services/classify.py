"""Step 7 (docs/method.md): a judge classifies held-out prompts from an explanation alone.

How the judge is asked is a scorer plugin (``lookups scorers``): the paper's zero-shot question
per prompt, several prompts per call (detection), ... An answer is Yes, No or unparseable;
unparseable is kept as such (never folded into No) so a judge that rambles cannot look like one
that says No. P(Yes) comes from first-token logprobs.
"""

from __future__ import annotations

from lookups import Classification, ClassifyRequest, HeadClassification, Judgement, PromptTemplate, Scorer
from services.llm.client import LLMClient


def classify(client: LLMClient, scorer: Scorer, template: PromptTemplate,
             request: ClassifyRequest) -> HeadClassification:
    skipped = scorer.cannot_judge(request)
    requests = [] if skipped else scorer.requests(template, request)
    responses = client.map(requests)
    judgements = ([Judgement(answer="unparseable", p_yes=None, raw="") for _ in request.prompts] if skipped
                  else scorer.judgements(request, [r.completion for r in responses]))
    return HeadClassification(
        neuron=request.neuron, head=request.head, explanation=request.explanation,
        scorer=scorer.name, scorer_version=scorer.version(template),
        template=template.name, template_version=template.version,
        backend=client.backend.name, model=client.backend.model,
        results=[Classification(prompt=p.text, active=p.active, effect=p.effect, **j.model_dump())
                 for p, j in zip(request.prompts, judgements)],
        calls=[r.record for r in responses], skipped=skipped,
        constrained=client.backend.constrains_choices if any(r.choices for r in requests) else None,
    )
