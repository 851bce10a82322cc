"""Step 7: one LLM call per (neuron, head) turns active and inactive examples into an explanation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.llm.client import LLMClient
from services.llm.schemas import CallRecord, LLMRequest


class ExplainRequest(BaseModel):
    """Examples are the truncated prompts, without the token: the template appends it."""

    model_config = ConfigDict(extra="forbid")

    neuron: str | None = Field(default=None, description="e.g. '27:1263'")
    head: str | None = Field(default=None, description="e.g. '12.3' (layer.head)")
    token: str = Field(min_length=1, description="The neuron's token, leading space included.")
    active_examples: list[str] = Field(min_length=1)
    inactive_examples: list[str] = Field(default_factory=list)


class Explanation(BaseModel):
    neuron: str | None
    head: str | None
    token: str
    text: str
    template: str
    template_version: str
    backend: str
    model: str
    call: CallRecord


def explain_request(template, request: ExplainRequest) -> LLMRequest:
    return LLMRequest(
        prompt=template.render_explainer(request.token, request.active_examples, request.inactive_examples),
        max_tokens=template.explain_max_tokens, purpose="explain", template_version=template.version,
    )


def explain(client: LLMClient, template, requests: list[ExplainRequest]) -> list[Explanation]:
    responses = client.map([explain_request(template, r) for r in requests])
    return [
        Explanation(
            neuron=r.neuron, head=r.head, token=r.token,
            text=(template.explanation_prefix + " " if template.explanation_prefix else "")
            + response.completion.text.strip(),
            template=template.name, template_version=template.version,
            backend=client.backend.name, model=client.backend.model, call=response.record,
        )
        for r, response in zip(requests, responses)
    ]
