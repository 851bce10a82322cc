"""``program``: the explanation's program (``active(text, tokens)``, from the ``program``
explainer or a file) run on the held-out prompts in the sandbox: the prediction is exact, and
no judge is called. A prompt the program cannot answer (it raised, timed out, ran out of memory,
returned a non-bool, or the program does not load) is unparseable with the reason in ``raw``."""

from __future__ import annotations

from lookups import (
    ClassifyRequest,
    Completion,
    InvalidInputError,
    Judgement,
    LLMRequest,
    Scorer,
    hookimpl,
    run_program,
)


class ProgramScorer(Scorer):
    name = "program"
    description = "Runs the explanation's program on each test prompt in a sandbox; no judge call"
    programs = True

    def requests(self, template, request: ClassifyRequest) -> list[LLMRequest]:
        return []

    def judgements(self, request: ClassifyRequest, answers: list[Completion]) -> list[Judgement]:
        missing = [i for i, p in enumerate(request.prompts) if p.pieces is None]
        if missing:
            raise InvalidInputError(f"prompts[{missing[0]}].pieces: the program scorer needs each prompt's "
                                    "tokens as text (campaigns fill them in)")
        found = run_program(request.explanation, [(p.text, p.pieces or []) for p in request.prompts])
        return [Judgement(answer="unparseable" if a.value is None else "yes" if a.value else "no",
                          p_yes=None, raw=a.error or str(a.value)) for a in found]


@hookimpl
def register_scorers(register) -> None:
    register(ProgramScorer())
