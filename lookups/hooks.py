"""The hooks a plugin implements, and the manager that loads every distribution's ``lookups``
entry points once per process. A hook receives a ``register`` callback rather than returning
lists, so one plugin module can register several things."""

from collections.abc import Callable
from functools import cache
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("lookups")
hookimpl = pluggy.HookimplMarker("lookups")


class LookupsHooks:
    """Hook specifications (pluggy reads the methods' names and signatures)."""

    @hookspec
    def register_corpus_sources(self, register: Callable[[Any], None]) -> None:
        """Register corpus sources (``lookups.CorpusSource`` objects)."""

    @hookspec
    def register_backends(self, register: Callable[[Any], None]) -> None:
        """Register LLM backend classes (subclasses of ``lookups.Backend``)."""

    @hookspec
    def register_templates(self, register: Callable[[Any], None]) -> None:
        """Register prompt templates (``lookups.PromptTemplate`` instances)."""

    @hookspec
    def register_explainers(self, register: Callable[[Any], None]) -> None:
        """Register explainer strategies (``lookups.ExplainerStrategy`` instances)."""

    @hookspec
    def register_scorers(self, register: Callable[[Any], None]) -> None:
        """Register explanation scorers (``lookups.Scorer`` instances)."""


@cache
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("lookups")
    pm.add_hookspecs(LookupsHooks)
    pm.load_setuptools_entrypoints("lookups")
    return pm
