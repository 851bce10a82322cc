"""What a worker process keeps between work items: loaded models, corpora and LLM backends.

A GPU worker loads each subject model once per process (lazily, so nothing touches CUDA before
Celery forks its children) and reuses it for every item of every campaign.
"""

from __future__ import annotations

import threading
from functools import cache

from services.campaigns.config import CampaignConfig
from services.corpus import Document, load_corpus, split_documents
from services.settings import Settings, get_settings


class Runtime:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self._lock = threading.Lock()
        self._models: dict[str, object] = {}
        self._backends: dict[str, object] = {}

    def model(self, name: str):
        from services.subject_model import load_subject_model

        with self._lock:
            if name not in self._models:
                self._models[name] = load_subject_model(name, settings=self.settings)
            return self._models[name]

    def documents(self, config: CampaignConfig, split: str) -> list[Document]:
        return _split(config.corpus, split, config.test_fraction, config.test_from_id,
                      config.max_train_docs if split == "train" else config.max_test_docs)

    def llm(self, spec: str, budget_usd: float | None):
        """An LLM client over a per-process backend (a local model loads once)."""
        from services.llm.client import LLMClient
        from services.llm.registry import create_backend

        with self._lock:
            if spec not in self._backends:
                self._backends[spec] = create_backend(spec)
        return LLMClient(self._backends[spec], settings=self.settings, budget_usd=budget_usd)


@cache
def _corpus(spec: str):
    return load_corpus(spec)


@cache
def _split(spec: str, split: str, test_fraction: float, test_from_id: str | None,
           limit: int | None) -> list[Document]:
    documents = split_documents(_corpus(spec), split, test_fraction=test_fraction,
                                test_from_id=test_from_id)
    return documents[:limit] if limit else documents
