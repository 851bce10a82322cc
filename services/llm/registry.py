"""Backends, templates, explainer strategies and scorers from every installed plugin, and the
names and spec strings that pick them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from lookups import (
    Backend,
    BackendDefaults,
    ExplainerStrategy,
    PromptTemplate,
    Scorer,
    TemplateError,
    UnknownBackendError,
    UnknownPluginError,
    get_plugin_manager,
    template_from_file,
)
from services.settings import get_settings

log = logging.getLogger(__name__)

# The explainer and the judge when none is named: the packaged SmolLM2-135M-Instruct from F16
# weights (plugins/backends/gguf_files.py). A judge's one-token answers are bound by prompt
# evaluation, which F16 weights speed up; an explainer decodes, checking guesses from its prompt
# in batches (prompt lookup), which F16 weights speed up too and round nearly as one token does.
DEFAULT_EXPLAINER = "local:smollm2-f16"
DEFAULT_JUDGE = "local:smollm2-f16"


class BackendInfo(BaseModel):
    name: str
    package: str
    description: str
    logprobs: bool
    max_context: int | None
    json_mode: bool
    constrains_choices: bool = Field(description="Answers a judge's question with one of its choices "
                                     "(Yes or No) by construction; otherwise the answer is parsed.")
    key_env_var: str | None
    needs_key: bool


class TemplateInfo(BaseModel):
    name: str
    package: str
    version: str
    description: str


class PluginInfo(BaseModel):
    """An explainer strategy or a scorer."""

    name: str
    package: str
    description: str


# Each loaded plugin's distribution name, read once: reading it parses the distribution's
# metadata (about 15 ms a lookup, which every work item paid, several times).
_packages: dict[Any, str] = {}


def _collect(hook_name: str) -> list[tuple[Any, str]]:
    """(registered object, source distribution) from each plugin implementing the hook."""
    pm = get_plugin_manager()
    for plugin, dist in pm.list_plugin_distinfo():
        if plugin not in _packages:
            _packages[plugin] = dist.project_name
    found: list[tuple[Any, str]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        package = _packages.get(impl.plugin, impl.plugin_name)
        impl.function(register=lambda item, package=package: found.append((item, package)))
    return found


def backend_classes() -> dict[str, tuple[type[Backend], str]]:
    return {cls.name: (cls, package) for cls, package in _collect("register_backends")}


def list_backends() -> list[BackendInfo]:
    return [
        BackendInfo(name=name, package=package, description=cls.description,
                    logprobs=cls.supports_logprobs, max_context=cls.max_context,
                    json_mode=cls.json_mode, constrains_choices=cls.constrains_choices,
                    key_env_var=cls.key_env_var, needs_key=cls.needs_key)
        for name, (cls, package) in sorted(backend_classes().items())
    ]


def batch_backends() -> list[str]:
    """Names of the backends with a provider batch mode (``Backend.supports_batch``)."""
    return sorted(name for name, (cls, _) in backend_classes().items() if cls.supports_batch)


def create_backend(spec: str, options: dict[str, Any] | None = None) -> Backend:
    """``name`` or ``name:target`` (``openai:gpt-4o``, ``local:/m.gguf``, ``openai-compatible:URL:MODEL``)."""
    name, _, target = spec.strip().partition(":")
    classes = backend_classes()
    if name not in classes:
        raise UnknownBackendError(
            f"unknown backend {name!r} in spec {spec!r}; installed: {', '.join(sorted(classes))}"
        )
    settings = get_settings()
    defaults = BackendDefaults(timeout_s=settings.llm_timeout_s, max_concurrency=settings.llm_max_concurrency,
                               cache_dir=settings.cache_dir)
    return classes[name][0](target, options, defaults)


def preload_backends(specs: Iterable[str] | None = None) -> threading.Thread:
    """Import the client libraries of the backends these specs name (default: every installed
    backend) in a background thread, so that a process's first LLM item does not spend seconds
    importing them. A backend that fails to preload is left for its first item to report."""
    classes = backend_classes()
    names = {spec.strip().partition(":")[0] for spec in specs} if specs is not None else set(classes)
    chosen = [classes[name][0] for name in sorted(names & set(classes))]

    def preload() -> None:
        for cls in chosen:
            try:
                cls.preload()
            except Exception:
                log.debug("backend %s could not preload", cls.name, exc_info=True)

    thread = threading.Thread(target=preload, name="preload-backends", daemon=True)
    thread.start()
    return thread


def named_targets(name: str) -> frozenset[str]:
    """The targets backend ``name`` knows by name (``Backend.named_targets``), as opposed to paths."""
    found = backend_classes().get(name)
    return frozenset(found[0].named_targets) if found else frozenset()


def is_local_backend(spec: str) -> bool:
    """The spec names a backend that runs on this machine (no per-token price)."""
    found = backend_classes().get(spec.strip().partition(":")[0])
    return found is not None and found[0].local


def unpriced_model(spec: str, prices: dict[str, tuple[float, float]]) -> str | None:
    """The model a backend spec calls when it costs money per token and ``prices`` has no price
    for it (a budget could not cap it); None when it is priced or runs locally."""
    if is_local_backend(spec):
        return None
    model = create_backend(spec).model
    return None if model in prices else model


def templates() -> dict[str, tuple[Any, str]]:
    return {t.name: (t, package) for t, package in _collect("register_templates")}


def list_templates() -> list[TemplateInfo]:
    return [TemplateInfo(name=name, package=package, version=t.version, description=t.description)
            for name, (t, package) in sorted(templates().items())]


def get_template(spec: str) -> PromptTemplate:
    """A registered template by name, or a ``.toml``/``.json`` template file."""
    found = templates()
    if spec in found:
        return found[spec][0]
    path = Path(spec).expanduser()
    if path.is_file():
        return template_from_file(path)
    raise TemplateError(f"unknown template {spec!r}: use one of {', '.join(sorted(found))} or a .toml/.json file")


def _named(hook_name: str) -> dict[str, tuple[Any, str]]:
    return {item.name: (item, package) for item, package in _collect(hook_name)}


def _get(hook_name: str, kind: str, name: str):
    found = _named(hook_name)
    if name not in found:
        raise UnknownPluginError(f"unknown {kind} {name!r}; installed: {', '.join(sorted(found))}")
    return found[name][0]


def _listed(hook_name: str) -> list[PluginInfo]:
    return [PluginInfo(name=name, package=package, description=item.description)
            for name, (item, package) in sorted(_named(hook_name).items())]


def get_strategy(name: str) -> ExplainerStrategy:
    """An explainer strategy by name (``lookups explainers`` lists them)."""
    return _get("register_explainers", "explainer strategy", name)


def get_scorer(name: str) -> Scorer:
    """A scorer by name (``lookups scorers`` lists them)."""
    return _get("register_scorers", "scorer", name)


def list_strategies() -> list[PluginInfo]:
    return _listed("register_explainers")


def list_scorers() -> list[PluginInfo]:
    return _listed("register_scorers")
