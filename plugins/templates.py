"""Prompt templates (explainer + classifier) and the built-in ``neo2024`` ones, verbatim from the paper.

A template's ``version`` hashes everything that shapes the prompts and answers, so every result
records exactly which wording produced it. Users add templates from a ``.toml`` or ``.json`` file
with the same fields.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plugins.manager import hookimpl
from services.llm.errors import TemplateError

EXPLAINER_FIELDS = ("token", "active_examples", "inactive_examples")
CLASSIFIER_FIELDS = ("explanation", "example")


class PromptTemplate(BaseModel):
    """``explainer`` uses {token}, {active_examples}, {inactive_examples}; each example is rendered
    with ``example_line`` ({example}). ``classifier`` uses {explanation} and {example}.
    ``explanation_prefix`` is prepended to the explainer's answer (for completion-style prompts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    explainer: str
    example_line: str = "*{example}"
    explanation_prefix: str = ""
    classifier: str
    explain_max_tokens: int = Field(default=200, gt=0, le=4096)
    classify_max_tokens: int = Field(default=1, gt=0, le=64)

    @model_validator(mode="after")
    def _placeholders_work(self) -> PromptTemplate:
        for field, names in (("explainer", EXPLAINER_FIELDS), ("classifier", CLASSIFIER_FIELDS),
                             ("example_line", ("example",))):
            try:
                getattr(self, field).format(**{n: "" for n in names})
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"{field}: bad placeholder {error}; allowed: {', '.join(names)}") from None
        return self

    @property
    def version(self) -> str:
        shaping = self.model_dump(exclude={"name", "description"})
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    def render_explainer(self, token: str, active: list[str], inactive: list[str]) -> str:
        """Examples get the neuron's token appended, as the paper shows them."""
        lines = lambda examples: "\n".join(self.example_line.format(example=e + token) for e in examples)  # noqa: E731
        return self.explainer.format(token=token, active_examples=lines(active),
                                     inactive_examples=lines(inactive))

    def render_classifier(self, explanation: str, example: str) -> str:
        """The explanation comes first so servers with prefix caching reuse it across examples."""
        return self.classifier.format(explanation=" ".join(explanation.splitlines()), example=example)


_EXPLAINER_BODY = '''We are studying attention heads in a transformer architecture neural network. Each attention head looks for some particular thing in a short document.
This attention head in particular helps to predict that the next token is "{token}", but it is only active in some documents and not others. Look at the documents and explain what makes the attention head active, taking into consideration the inactive examples.
Examples where the attention head is active: """
{active_examples}
"""
Examples where the attention head is inactive: """
{inactive_examples}
"""
'''

_CLASSIFIER = '''{explanation}
Is the given example an active example? (Yes/No)

Example: """
{example}
"""
Answer: '''

NEO2024 = PromptTemplate(
    name="neo2024",
    description="Neo, Cohen & Barez 2024: final explainer and zero-shot classifier prompts",
    explainer=_EXPLAINER_BODY + "In two to three sentences, suggest when the attention head is active.",
    classifier=_CLASSIFIER,
)

_V1_PREFIX = "This attention head is active when the document"
NEO2024_V1 = PromptTemplate(
    name="neo2024-v1",
    description="The paper's older explainer variant, completing 'This attention head is active when the document'",
    explainer=_EXPLAINER_BODY + "Explanation: " + _V1_PREFIX,
    explanation_prefix=_V1_PREFIX,
    classifier=_CLASSIFIER,
)


def template_from_file(path: Path) -> PromptTemplate:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise TemplateError(f"cannot read template file {path}: {error}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    try:
        return PromptTemplate.model_validate(data)
    except ValidationError as error:
        raise TemplateError(f"template file {path}: {error}") from None


@hookimpl
def register_templates(register) -> None:
    register(NEO2024)
    register(NEO2024_V1)
