"""``agent``: a closed loop. The explainer proposes an explanation and probe texts it predicts
will make the head active or inactive; the subject model measures them (a gpu item); the
explainer revises from the measurements; up to the campaign's ``agent_rounds``. The campaign
keeps the round that best predicts the training prompts and the probes (services.agent).
"""

from __future__ import annotations

import re

from lookups import AgentRound, ExplainerStrategy, ExplainRequest, LLMRequest, Probe, hookimpl
from plugins.explainers.contrastive import evidence

MAX_TOKENS = 300
PROBES_PER_KIND = 3

_FORMAT = '''Answer in exactly this format, one item per line, without [[ ]] marks:
EXPLANATION: <one or two sentences: what the active documents have and the near misses lack>
ACTIVE: <a new short document, written like the ones above, on which you predict the head is active; stop where the next word would be "{token}">
INACTIVE: <a new short document on which you predict the head is inactive; also stop where the next word would be "{token}">
Give {n} ACTIVE lines and {n} INACTIVE lines.'''

_FIRST = '''First, explain what makes this head active. Then test your explanation: write new documents that, if your explanation is right, make the head active, and documents that keep it inactive.
''' + _FORMAT

_REVISE = '''Your explanation in round {round}: "{explanation}"
It predicted the activity of the head on the documents above {train}.
Your test documents, run through the model:
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
        """The first explanation and the first probes of each kind in an answer, without [[ ]]
        marks and without a final token (an answer may end a probe with it, punctuated); an
        answer without an EXPLANATION line is taken whole as the explanation, with no probes."""
        explanation, probes = None, []
        ending = re.compile(rf"\s*{re.escape(token.strip())}\W*$") if token.strip() else None
        for line in answer.splitlines():
            match = _LINE.match(line.strip())
            if not match:
                continue
            kind, text = match.group(1).upper(), match.group(2).replace("[[", "").replace("]]", "")
            text = text.strip().strip('"“”').strip()
            if kind == "EXPLANATION":
                explanation = explanation or text
                continue
            if ending is not None:
                text = ending.sub("", text)
            predicted = kind == "ACTIVE"
            if sum(p.predicted_active == predicted for p in probes) < PROBES_PER_KIND:
                probes.append(Probe(text=text, predicted_active=predicted))
        if explanation is None:
            return answer.strip(), []
        return explanation, probes


@hookimpl
def register_explainers(register) -> None:
    register(Agent())
