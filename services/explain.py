"""Step 7: an explainer strategy turns a head's active and inactive examples into an explanation.

Strategies are plugins (``lookups explainers``): ``oneshot`` sends the paper's prompt;
``contrastive`` adds what the head reads and near misses, measured on the GPU side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from services.agent import AgentOutcome
from services.head_reads import SourceRead
from services.llm.client import LLMClient
from services.llm.schemas import CallRecord

if TYPE_CHECKING:
    from plugins.explainers.base import ExplainerStrategy


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
    agent: AgentOutcome | None = Field(default=None, description="The agent's loop: rounds, accuracies, "
                                       "the round kept and why it stopped (agent strategy only).")


def explain(client: LLMClient, strategy: ExplainerStrategy, template,
            requests: list[ExplainRequest]) -> list[Explanation]:
    responses = client.map([strategy.request(template, r) for r in requests])
    return [
        Explanation(
            neuron=r.neuron, head=r.head, token=r.token,
            text=strategy.finish(template, response.completion.text),
            strategy=strategy.name, strategy_version=strategy.version(template),
            template=template.name, template_version=template.version,
            backend=client.backend.name, model=client.backend.model, call=response.record,
        )
        for r, response in zip(requests, responses)
    ]
