"""What a process keeps between pieces of work: loaded models and LLM backends (corpora are
streamed; ``services.corpus`` keeps their ids per process).

A GPU worker loads each subject model once per process (lazily, so nothing touches CUDA before
Celery forks its children) and reuses it for every item of every campaign and job; the CLI
uses one for a single command.
"""

from __future__ import annotations

import threading

from services.llm.client import LLMClient
from services.llm.registry import create_backend
from services.settings import Settings, get_settings
from services.subject_model import load_subject_model


class Runtime:
    def __init__(self, settings: Settings | None = None, *, progress: bool = False):
        """``progress``: show progress bars on long GPU work (the CLI; never in workers)."""
        self.settings = settings or get_settings()
        self.progress = progress
        self._lock = threading.Lock()
        self._models: dict[str, object] = {}
        self._backends: dict[str, object] = {}

    def model(self, name: str):

        with self._lock:
            if name not in self._models:
                self._models[name] = load_subject_model(name, settings=self.settings)
            return self._models[name]

    def llm(self, spec: str, budget_usd: float | None, prices: dict[str, tuple[float, float]] | None = None):
        """An LLM client over a per-process backend (a local model loads once); ``prices`` add to
        the settings' price table (USD per million input, output tokens)."""

        with self._lock:
            if spec not in self._backends:
                self._backends[spec] = create_backend(spec)
        settings = self.settings
        if prices:
            settings = settings.model_copy(update={"llm_prices": {**settings.llm_prices, **prices}})
        return LLMClient(self._backends[spec], settings=settings, budget_usd=budget_usd)
