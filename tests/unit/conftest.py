"""Fixtures of the campaign tests: one runtime per module (the tiny model loads once, as in a
worker process), a fresh results store per test, the loopback fake OpenAI server answering as
explainer and judge, and a tiny campaign's config on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services.campaigns.config import CampaignConfig
from services.runtime import Runtime
from services.store import Store
from tests.conftest import tiny_campaign

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI  # noqa: E402


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


def answer(prompt: str) -> str:
    """The fake LLM's answer: Yes to a judge's question, one explanation to an explainer."""
    return "Yes" if "Answer:" in prompt else "It is active when the document is a list."


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        server.respond = answer
        yield server


@pytest.fixture
def config(tiny_gpt2_dir, corpus_path, fake_llm, tmp_path) -> CampaignConfig:
    """A tiny campaign on the fake LLM; a model name of its own per test, so no test answers from
    another's LLM cache."""
    return tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-{tmp_path.name}")
