"""What a process keeps between pieces of work: loaded models and LLM backends (corpora are
streamed; ``services.corpus`` keeps their ids per process).

A GPU worker loads each subject model once per process (lazily, so nothing touches CUDA before
Celery forks its children) and reuses it for every item of every campaign and job; the CLI
uses one for a single command.
"""

from __future__ import annotations

import threading

from lookups import Backend
from services.llm.budget import Budget
from services.llm.client import LLMClient
from services.llm.cost import with_prices
from services.llm.ratelimit import limiter_for
from services.llm.registry import create_backend
from services.llm.store import LLMStore, default_url
from services.settings import Settings, get_settings
from services.subject_model import load_subject_model


class Runtime:
    def __init__(self, settings: Settings | None = None, *, progress: bool = False,
                 rate_redis_url: str | None = None):
        """``progress``: show progress bars on long GPU work (the CLI; never in workers).
        ``rate_redis_url``: count LLM rate limits in this Redis, with every process that shares it
        (workers: the broker); None: in this process only."""
        self.settings = settings or get_settings()
        self.progress = progress
        self.rate_redis_url = rate_redis_url
        self._lock = threading.Lock()
        self._models: dict[str, object] = {}
        self._backends: dict[str, Backend] = {}
        self._llm_store: LLMStore | None = None

    def model(self, name: str):

        with self._lock:
            if name not in self._models:
                self._models[name] = load_subject_model(name, settings=self.settings)
            return self._models[name]

    def llm(self, spec: str, budget: Budget | None, prices: dict[str, tuple[float, float]] | None = None):
        """An LLM client over a per-process backend (a local model loads once, and its concurrency
        limit holds across clients); ``prices`` add to the settings' price table (USD per million
        input, output tokens) the models it lacks, never replacing the operator's."""

        with self._lock:
            if spec not in self._backends:
                self._backends[spec] = create_backend(spec)
            if self._llm_store is None:  # opened once: opening checks the schema, a cost per item otherwise
                self._llm_store = LLMStore(default_url(self.settings))
        settings = self.settings
        if prices:
            settings = settings.model_copy(update={"llm_prices": with_prices(settings, prices)})
        backend = self._backends[spec]
        limiter = limiter_for(settings, backend.name, backend.model, self.rate_redis_url)
        return LLMClient(backend, settings=settings, store=self._llm_store, budget=budget, limiter=limiter)
