"""What a scorer is: how the judge is asked about a head's test prompts (its requests), how its
answers become one judgement per prompt, and how those judgements become the head's score."""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

from services.classify import ClassifyRequest, HeadClassification, Judgement
from services.llm.schemas import Completion, LLMRequest
from services.score import HeadScore, head_score


class Scorer:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Everything the scorer itself says to the judge: part of its version, with the template's.
    wording: ClassVar[str] = ""

    def version(self, template) -> str:
        shaping = [self.name, self.wording, template.version]
        return hashlib.sha256(json.dumps(shaping).encode()).hexdigest()[:16]

    def requests(self, template, request: ClassifyRequest) -> list[LLMRequest]:
        raise NotImplementedError

    def judgements(self, request: ClassifyRequest, answers: list[Completion]) -> list[Judgement]:
        """One judgement per test prompt, in the request's order."""
        raise NotImplementedError

    def score(self, head: HeadClassification) -> HeadScore:
        """The paper's balanced accuracy; unparseable answers count against the judge."""
        return head_score(head)
