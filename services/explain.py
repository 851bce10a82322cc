"""Step 5 (docs/method.md): an explainer strategy turns a head's active and inactive examples
into an explanation.

Strategies are plugins (``lookups explainers``): ``oneshot`` sends the paper's prompt;
``contrastive`` adds what the head reads and near misses, measured on the GPU side; ``program``
answers with a sentence and a program, best of ``samples`` answers on the training prompts.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from lookups import CallRecord, ExplainerStrategy, ExplainRequest, ProgramExplanation, PromptTemplate
from services.agent import AgentOutcome
from services.llm.client import LLMClient
from services.programs import best_program


class Explanation(BaseModel):
    neuron: str | None
    head: str | None
    token: str
    text: str
    strategy: str = "oneshot"
    strategy_version: str | None = None
    template: str
    template_version: str
    backend: str
    model: str
    call: CallRecord
    cut: str | None = Field(default=None, description="Why the explainer's answer was stopped early "
                            "and its tail dropped (it began repeating itself); None if it was not.")
    calls: list[CallRecord] = Field(default_factory=list, description="Every sample's call when "
                                    "more than one was sampled (best of k); ``call`` is the kept one's.")
    program: ProgramExplanation | None = Field(default=None, description="The program, its training "
                                               "accuracy and the samples' (program strategies only).")
    agent: AgentOutcome | None = Field(default=None, description="The agent's loop: rounds, accuracies, "
                                       "the round kept and why it stopped (agent strategy only).")


def explain(client: LLMClient, strategy: ExplainerStrategy, template: PromptTemplate,
            requests: list[ExplainRequest], samples: int = 1, temperature: float | None = None) -> list[Explanation]:
    """One explanation per request. A program strategy's ``samples`` answers (at
    ``temperature``, each sample its own cache entry) compete on the training prompts; other
    strategies make one call per request."""
    k = samples if strategy.programs else 1
    sampled = [r.model_copy(update={"temperature": temperature, "sample": i}) if k > 1 else r
               for r in (strategy.request(template, request) for request in requests) for i in range(k)]
    responses = client.map(sampled)
    found = []
    for index, r in enumerate(requests):
        mine = responses[index * k:(index + 1) * k]
        program = best_program(strategy, [m.completion.text for m in mine], r.examples or []) \
            if strategy.programs else None
        kept = mine[program.sample if program else 0]
        found.append(Explanation(
            neuron=r.neuron, head=r.head, token=r.token,
            text=program.sentence if program else strategy.finish(template, kept.completion.text),
            strategy=strategy.name, strategy_version=strategy.version(template),
            template=template.name, template_version=template.version,
            backend=client.backend.name, model=client.backend.model, call=kept.record,
            calls=[m.record for m in mine] if k > 1 else [], program=program, cut=kept.completion.cut,
        ))
    return found
