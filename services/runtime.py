"""What a process keeps between pieces of work: loaded models, corpora and LLM backends.

A GPU worker loads each subject model once per process (lazily, so nothing touches CUDA before
Celery forks its children) and reuses it for every item of every campaign and job; the CLI
uses one for a single command.
"""

from __future__ import annotations

import threading
from functools import cache

from contract import Document
from services.corpus import Corpus, CorpusInfo, CorpusSelection, load_corpus, split_documents
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

    def documents(self, selection: CorpusSelection) -> list[Document]:
        return _selected(selection)

    def corpus_info(self, selection: CorpusSelection) -> CorpusInfo:
        """Provenance of the selected documents (spec, split, count, fingerprint)."""
        documents = _selected(selection)
        return CorpusInfo(spec=selection.corpus, split=selection.split, n_documents=len(documents),
                          fingerprint=_corpus(selection.corpus).fingerprint(documents))

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


@cache
def _corpus(spec: str) -> Corpus:
    return load_corpus(spec)


@cache
def _selected(selection: CorpusSelection) -> list[Document]:
    documents = split_documents(_corpus(selection.corpus), selection.split,
                                test_fraction=selection.test_fraction, test_from_id=selection.test_from_id)
    return documents[: selection.max_docs] if selection.max_docs else documents
