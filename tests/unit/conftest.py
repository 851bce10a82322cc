"""Fixtures of the campaign tests: one runtime per module (the tiny model loads once, as in a
worker process) and a fresh results store per test."""

from __future__ import annotations

import pytest

from services.runtime import Runtime
from services.store import Store


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The unit tests' models are tiny and gain nothing from a second thread; on a busy 2-core
    machine torch's threads waiting on each other made test_ablation, test_attribution and
    test_scan take 80-100 s of CPU instead of 20 s."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
