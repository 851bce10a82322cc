"""``agent``: a closed loop. The explainer proposes an explanation and probe texts it predicts
will make the head active or inactive; the subject model measures them (a gpu item); the
explainer revises from the measurements; up to the campaign's ``agent_rounds``. The campaign
keeps the round that best predicts the training prompts and the probes (services.agent).
"""

from __future__ import annotations

import re

from plugins.explainers.base import ExplainerStrategy
from plugins.explainers.contrastive import evidence
from plugins.manager import hookimpl
from services.agent import AgentRound, Probe
from services.explain import ExplainRequest
from services.llm.schemas import LLMRequest

MAX_TOKENS = 300
PROBES_PER_KIND = 3

_FORMAT = '''Answer in exactly this format, one item per line:
EXPLANATION: <one or two sentences: what a document must contain for this head to be active>
ACTIVE: <a new short document (one or two sentences) on which you predict the head is active; it must end just before "{token}">
INACTIVE: <a new short document on which you predict the head is inactive; it must also end just before "{token}">
Give {n} ACTIVE lines and {n} INACTIVE lines.'''

_FIRST = '''First, explain what makes this head active. Then test your explanation: write new documents that, if your explanation is right, make the head active, and documents that keep it inactive.
''' + _FORMAT

_REVISE = '''Your explanation in round {round}: "{explanation}"
It predicted the activity of the head on the documents above {train}.
Your test documents, run through the model (each ended just before "{token}"):
{measured}

Revise the explanation so that it fits both the documents above and these measurements, then test it with new documents.
''' + _FORMAT

_LINE = re.compile(r"^\W*(EXPLANATION|ACTIVE|INACTIVE)\s*:\s*(.+)$", re.IGNORECASE)


def _measured(round_: AgentRound) -> str:
    lines = []
    for m in round_.measurements or []:
        said = "active" if m.predicted_active else "inactive"
        found = f"rejected: {m.rejected}" if m.rejected else (
            f"measured {'ACTIVE' if m.active else 'inactive'} (attribution {m.attribution:.3f})")
        lines.append(f'- you predicted {said}, {found}: "{m.text}"')
    return "\n".join(lines) or "- (no test documents were given)"


def _train(round_: AgentRound) -> str:
    e = round_.evaluation
    if e is None or not e.train_total:
        return "(not measured)"
    return f"correctly for {e.train_correct} of {e.train_total}"


class Agent(ExplainerStrategy):
    name = "agent"
    description = ("Closed loop: the contrastive evidence, then explanation + probe texts, measured on the "
                   "subject model and revised over rounds; keeps the best round on training prompts and probes")
    wording = _FIRST + _REVISE + f"|{MAX_TOKENS}|{PROBES_PER_KIND}"
    closed_loop = True

    def request(self, template, request: ExplainRequest) -> LLMRequest:
        prompt = evidence(request, self.name) + "\n\n" + _FIRST.format(token=request.token, n=PROBES_PER_KIND)
        return LLMRequest(prompt=prompt, max_tokens=MAX_TOKENS, purpose="explain",
                          template_version=self.version(template))

    def revision(self, template, request: ExplainRequest, last: AgentRound) -> LLMRequest:
        """The next round's request, from the last round and what was measured of it."""
        ask = _REVISE.format(round=last.round, explanation=" ".join(last.explanation.split()),
                             train=_train(last), token=request.token, measured=_measured(last),
                             n=PROBES_PER_KIND)
        return LLMRequest(prompt=evidence(request, self.name) + "\n\n" + ask, max_tokens=MAX_TOKENS,
                          purpose="explain", template_version=self.version(template))

    def parse(self, answer: str, token: str) -> tuple[str, list[Probe]]:
        """The explanation and probes of an answer; a probe ending with the token loses it. An
        answer without an EXPLANATION line is taken whole as the explanation, with no probes."""
        explanation, probes = None, []
        for line in answer.splitlines():
            match = _LINE.match(line.strip())
            if not match:
                continue
            kind, text = match.group(1).upper(), match.group(2).strip().strip('"“”').rstrip()
            if kind == "EXPLANATION":
                explanation = explanation or text
            elif text:
                if text.endswith(token.strip()) and token.strip():
                    text = text[: len(text) - len(token.strip())].rstrip()
                probes.append(Probe(text=text, predicted_active=kind == "ACTIVE"))
        if explanation is None:
            return answer.strip(), []
        return explanation, probes


@hookimpl
def register_explainers(register) -> None:
    register(Agent())
