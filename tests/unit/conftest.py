"""Fixtures of the campaign tests: one runtime per module (the tiny model loads once, as in a
worker process) and a fresh results store per test."""

from __future__ import annotations

import pytest

from services.runtime import Runtime
from services.store import Store


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    from services.settings import Settings

    llm_db = tmp_path_factory.mktemp("llm") / "llm.sqlite"
    return Runtime(Settings(device="cpu", llm_db_url=f"sqlite:///{llm_db}", llm_max_attempts=1))


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    yield store
    store.dispose()
