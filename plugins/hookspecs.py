"""Hook specifications. A hook receives a ``register`` callback rather than returning lists."""

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("lookups")


@hookspec
def register_corpus_sources(register: Callable[[Any], None]) -> None:
    """Register corpus sources (objects with ``name``, ``can_load(spec)`` and ``load(spec)``)."""


@hookspec
def register_backends(register: Callable[[Any], None]) -> None:
    """Register LLM backend classes (subclasses of ``plugins.backends.base.Backend``)."""


@hookspec
def register_templates(register: Callable[[Any], None]) -> None:
    """Register prompt templates (``plugins.templates.PromptTemplate`` instances)."""


@hookspec
def register_explainers(register: Callable[[Any], None]) -> None:
    """Register explainer strategies (``plugins.explainers.base.ExplainerStrategy`` instances)."""


@hookspec
def register_scorers(register: Callable[[Any], None]) -> None:
    """Register explanation scorers (``plugins.scorers.base.Scorer`` instances)."""
