"""Step 5 (docs/method.md): an explainer strategy turns a head's active and inactive examples
into an explanation.

Strategies are plugins (``lookups explainers``): ``oneshot`` sends the paper's prompt;
``contrastive`` adds what the head reads and near misses, measured on the GPU side.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from contract import CallRecord, ExplainerStrategy, ExplainRequest, PromptTemplate
from services.agent import AgentOutcome
from services.llm.client import LLMClient


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
    agent: AgentOutcome | None = Field(default=None, description="The agent's loop: rounds, accuracies, "
                                       "the round kept and why it stopped (agent strategy only).")


def explain(client: LLMClient, strategy: ExplainerStrategy, template: PromptTemplate,
            requests: list[ExplainRequest]) -> list[Explanation]:
    responses = client.map([strategy.request(template, r) for r in requests])
    return [
        Explanation(
            neuron=r.neuron, head=r.head, token=r.token,
            text=strategy.finish(template, response.completion.text),
            strategy=strategy.name, strategy_version=strategy.version(template),
            template=template.name, template_version=template.version,
            backend=client.backend.name, model=client.backend.model, call=response.record,
            cut=response.completion.cut,
        )
        for r, response in zip(requests, responses)
    ]
