"""``program`` and ``program-agent``: the head explained as a sentence and a Python function
``active(text, tokens) -> bool`` that a scorer runs exactly (the ``program`` scorer).

Both are shown the ``contrastive`` evidence. ``program``: the campaign samples k answers and
keeps the program with the best balanced accuracy on the training prompts. ``program-agent``: a
closed loop whose rounds show the explainer the training prompts its current program gets wrong
(measured in the sandbox, no judge call) and ask for a revision; the best round is kept.
"""

from __future__ import annotations

import re

from lookups import AgentRound, ExplainerStrategy, ExplainRequest, LLMRequest, Probe, hookimpl
from plugins.explainers.contrastive import evidence

MAX_TOKENS = 400
MAX_WRONG = 8

_ASK = '''Write a Python function that tells from a document alone whether the head is active on it:
```python
def active(text: str, tokens: list[str]) -> bool:
```
`text` is a document (without the final "{token}"); `tokens` are its tokens as strings, which concatenate to `text`; the head acts at the last token. Return True exactly when the head is active: check concrete words or patterns near the end of the document, such as the tokens read more often when active. Use only the modules re, string and math; no other imports, no files, no printing.

Answer with the complete function in a ```python block, then one line:
EXPLANATION: <one sentence: what the active documents have and the near misses lack>'''

_REVISE = '''Your rule so far:
EXPLANATION: {sentence}
```python
{source}
```
It predicts the head correctly on {correct} of {total} documents above. It is wrong on these:
{wrong}

Revise the rule so that it is right on these documents too, without breaking the others.
''' + _ASK

_EXPLANATION = re.compile(r"^\W*EXPLANATION\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_DEF = re.compile(r"^(?:import |from |def active\b)", re.MULTILINE)


def parse_program(answer: str) -> tuple[str, str | None, str | None]:
    """(sentence, source, why no source): the EXPLANATION line (else the first line outside code), and
    the first fenced block defining ``active``, else the code from the first import or
    ``def active`` line on."""
    found = _EXPLANATION.search(answer)
    prose = [line for line in _FENCE.sub("", answer).splitlines() if line.strip()]
    sentence = (found.group(1) if found else prose[0] if prose else "(no sentence)").strip().strip('"“”')
    blocks = [b for b in _FENCE.findall(answer) if "def active" in b]
    if blocks:
        return sentence, blocks[0].strip("\n"), None
    start = _DEF.search(answer)
    if start is not None and "def active" in answer[start.start():]:
        return sentence, answer[start.start():].strip("\n"), None
    return sentence, None, "the answer holds no program (no ```python block defining active)"


class Program(ExplainerStrategy):
    name = "program"
    description = ("A sentence and a Python function active(text, tokens) from the contrastive evidence; "
                   "best of k samples on the training prompts, run exactly by the program scorer")
    wording = _ASK + f"|{MAX_TOKENS}"
    programs = True

    def request(self, template, request: ExplainRequest) -> LLMRequest:
        prompt = evidence(request, self.name) + "\n\n" + _ASK.format(token=request.token)
        return LLMRequest(prompt=prompt, max_tokens=MAX_TOKENS, purpose="explain",
                          template_version=self.version(template))

    def finish(self, template, answer: str) -> str:
        return parse_program(answer)[0]

    def program(self, answer: str) -> tuple[str, str | None, str | None]:
        return parse_program(answer)


def _wrong(request: ExplainRequest, indices: list[int]) -> str:
    examples = request.examples or []
    lines = [f'- head {"ACTIVE" if examples[i].active else "inactive"}, your rule said '
             f'{"inactive" if examples[i].active else "active"}: "{examples[i].text[-300:]}"'
             for i in indices[:MAX_WRONG] if i < len(examples)]
    more = len(indices) - MAX_WRONG
    return "\n".join(lines + ([f"- ... and {more} more"] if more > 0 else [])) or "- (none)"


class ProgramAgent(Program):
    name = "program-agent"
    description = ("Closed loop over programs: each round shows the training prompts the current program "
                   "gets wrong (run in the sandbox, no judge) and asks for a revision; keeps the best round")
    wording = _ASK + _REVISE + f"|{MAX_TOKENS}|{MAX_WRONG}"
    closed_loop = True

    def revision(self, template, request: ExplainRequest, last: AgentRound) -> LLMRequest:
        sentence, source, error = parse_program(last.raw)
        e = last.evaluation
        ask = _REVISE.format(sentence=sentence, source=source or f"# {error}",
                             correct=e.train_correct if e else 0, total=e.train_total if e else 0,
                             wrong=_wrong(request, (e.wrong or []) if e else []), token=request.token)
        return LLMRequest(prompt=evidence(request, self.name) + "\n\n" + ask, max_tokens=MAX_TOKENS,
                          purpose="explain", template_version=self.version(template))

    def parse(self, answer: str, token: str) -> tuple[str, list[Probe]]:
        """The sentence; a program round proposes no probes (its test is the training prompts)."""
        return parse_program(answer)[0], []


@hookimpl
def register_explainers(register) -> None:
    register(Program())
    register(ProgramAgent())
