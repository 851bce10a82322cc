"""What a prompt template is (explainer + classifier wording) and how one is read from a file.

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

from lookups.errors import TemplateError

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
