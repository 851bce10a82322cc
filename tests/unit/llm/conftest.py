"""LLM test fixtures: a fake OpenAI server on loopback, a SQLite store per test, fast retries."""

from __future__ import annotations

import pytest
from fake_openai import TEST_KEY as KEY
from fake_openai import FakeOpenAI  # noqa: E402


@pytest.fixture
def fake_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Fast backoff, a per-test database and a price for the fake model."""
    from services.settings import get_settings

    monkeypatch.setenv("LOOKUPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LOOKUPS_LLM_RETRY_INITIAL_S", "0.01")
    monkeypatch.setenv("LOOKUPS_LLM_RETRY_MAX_S", "0.05")
    monkeypatch.setenv("LOOKUPS_LLM_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("LOOKUPS_LLM_PRICES", '{"fake-gpt": [1000.0, 2000.0]}')
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return get_settings()


@pytest.fixture
def openai_client(settings, fake_server):
    """The real ``openai`` backend (ChatOpenAI) pointed at the fake server."""
    from services.llm.budget import local_budget
    from services.llm.client import LLMClient
    from services.llm.registry import create_backend

    def make(budget_usd: float | None = None, **options) -> LLMClient:
        backend = create_backend("openai:fake-gpt", {"base_url": fake_server.url, "timeout": 2, **options})
        return LLMClient(backend, settings=settings, budget=local_budget(budget_usd))

    return make
