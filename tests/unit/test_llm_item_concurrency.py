"""``lookups run`` runs a campaign's LLM items several at a time (``run_in_process`` with
``llm_concurrency``), while each backend's ``max_concurrency`` still caps the calls in flight
across all of them; every result is stored once. Real store, tiny model, the loopback fake
OpenAI server answering after a delay."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI  # noqa: E402

from services.campaigns.execute import run_in_process  # noqa: E402
from services.campaigns.lifecycle import create_campaign  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import ClassificationRow, ExplanationRow, HeadRow  # noqa: E402
from tests.conftest import tiny_campaign  # noqa: E402


class InFlight:
    """The most requests the fake server was answering at once, explanations alone and all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = {"explain": 0, "all": 0}
        self.most = {"explain": 0, "all": 0}

    def respond(self, prompt: str) -> str:
        kinds = ["all"] if "Answer:" in prompt else ["all", "explain"]
        with self.lock:
            for kind in kinds:
                self.now[kind] += 1
                self.most[kind] = max(self.most[kind], self.now[kind])
        time.sleep(0.2)
        with self.lock:
            for kind in kinds:
                self.now[kind] -= 1
        return "Yes" if "Answer:" in prompt else "Active on lists of names."


def test_llm_items_run_together_under_the_backends_cap(tiny_gpt2_dir, corpus_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKUPS_LLM_DB_URL", f"sqlite:///{tmp_path / 'llm.sqlite'}")
    monkeypatch.setenv("LOOKUPS_LLM_MAX_CONCURRENCY", "3")
    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    flight = InFlight()
    with FakeOpenAI() as fake:
        fake.respond = flight.respond
        config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake.url}:fake-{tmp_path.name}",
                               ablation=False)
        campaign_id = create_campaign(store, config)
        state = run_in_process(store, campaign_id, Runtime(), llm_concurrency=6)

    assert state.status == "completed", state
    assert flight.most["explain"] > 1  # explain items (one call each) ran side by side
    assert flight.most["all"] <= 3  # six items at once, yet never more calls than the backend allows
    with store.session() as session:
        def rows(table) -> int:
            return session.scalar(select(func.count()).select_from(table).where(table.campaign_id == campaign_id))

        assert rows(ExplanationRow) == rows(HeadRow) >= 2
        assert rows(ClassificationRow) == next(s.done for s in state.stages if s.stage == "classify") >= 1
    store.dispose()
