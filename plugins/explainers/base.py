"""What an explainer strategy is: a name, its own wording, and how it turns a head's examples
into one LLM request and the answer into an explanation."""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

from services.explain import ExplainRequest
from services.llm.schemas import LLMRequest


class ExplainerStrategy:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Everything the strategy itself says to the LLM: part of its version, with the template's.
    wording: ClassVar[str] = ""
    # A closed-loop strategy proposes probes and revises from their measurements over several
    # rounds (the campaign's agent stage); it also implements ``revision`` and ``parse``.
    closed_loop: ClassVar[bool] = False

    def version(self, template) -> str:
        shaping = [self.name, self.wording, template.version]
        return hashlib.sha256(json.dumps(shaping).encode()).hexdigest()[:16]

    def request(self, template, request: ExplainRequest) -> LLMRequest:
        raise NotImplementedError

    def finish(self, template, answer: str) -> str:
        """The stored explanation from the LLM's answer."""
        return answer.strip()
