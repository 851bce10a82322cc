"""``oneshot``: the paper's explainer prompt (the template's), unchanged; the default."""

from __future__ import annotations

from lookups import ExplainerStrategy, ExplainRequest, LLMRequest, hookimpl


class OneShot(ExplainerStrategy):
    name = "oneshot"
    description = "The paper's prompt: the neuron's prompts split into active and inactive examples"

    def request(self, template, request: ExplainRequest) -> LLMRequest:
        return LLMRequest(
            prompt=template.render_explainer(request.token, request.active_examples, request.inactive_examples),
            max_tokens=template.explain_max_tokens, purpose="explain", template_version=template.version,
        )

    def finish(self, template, answer: str) -> str:
        prefix = template.explanation_prefix + " " if template.explanation_prefix else ""
        return prefix + answer.strip()


@hookimpl
def register_explainers(register) -> None:
    register(OneShot())
