"""``detection``: several test prompts per call; the judge names the active ones.

Far fewer calls for the same labels (delphi's detection scorer). An answer that names no
valid example and is not "none" makes every prompt of its group unparseable: counted against
the judge, never as No.
"""

from __future__ import annotations

import re

from lookups import ClassifyRequest, Completion, Judgement, LLMRequest, Scorer, hookimpl, share_prefix

GROUP_SIZE = 10

_PROMPT = '''{explanation}

Above is an explanation of when an attention head is active. Below are {n} numbered examples. Decide for each example whether the attention head is active on it.

{examples}

Answer with the numbers of the active examples separated by commas, or "none" if no example is active.
Active examples:'''
_EXAMPLE = 'Example {i}: """\n{text}\n"""'
_NONE = re.compile(r"^\W*none\b", re.IGNORECASE)


def read_numbers(answer: str, n: int) -> set[int] | None:
    """The example numbers named on the answer's first line; None when it names none validly."""
    line = answer.strip().split("\n", 1)[0]
    if _NONE.match(line):
        return set()
    numbers = [int(x) for x in re.findall(r"\d+", line)]
    if not numbers or any(not 1 <= x <= n for x in numbers):
        return None
    return set(numbers)


class Detection(Scorer):
    name = "detection"
    description = f"Up to {GROUP_SIZE} test prompts per call; the judge lists the active ones; balanced accuracy"
    wording = _PROMPT + _EXAMPLE + f"|{GROUP_SIZE}"

    def _groups(self, request: ClassifyRequest) -> list[list[str]]:
        texts = [p.text + request.token for p in request.prompts]
        return [texts[i:i + GROUP_SIZE] for i in range(0, len(texts), GROUP_SIZE)]

    def requests(self, template, request: ClassifyRequest) -> list[LLMRequest]:
        explanation = " ".join(request.explanation.splitlines())
        return share_prefix([
            LLMRequest(
                prompt=_PROMPT.format(explanation=explanation, n=len(group), examples="\n".join(
                    _EXAMPLE.format(i=i, text=text) for i, text in enumerate(group, 1))),
                max_tokens=4 * len(group) + 8, purpose="classify", template_version=self.version(template))
            for group in self._groups(request)
        ])

    def judgements(self, request: ClassifyRequest, answers: list[Completion]) -> list[Judgement]:
        found: list[Judgement] = []
        for group, answer in zip(self._groups(request), answers):
            named = read_numbers(answer.text, len(group))
            found += [Judgement(answer="unparseable" if named is None else "yes" if i in named else "no",
                                p_yes=None, raw=answer.text)
                      for i in range(1, len(group) + 1)]
        return found


@hookimpl
def register_scorers(register) -> None:
    register(Detection())
