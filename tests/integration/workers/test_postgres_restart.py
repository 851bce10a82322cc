"""A campaign over real workers whose results store is a real PostgreSQL server, restarted twice
mid-campaign (issue 13): once while a gpu item (attribution) runs, once while the llm stage
(explain) runs. Every connection the workers, the orchestrator and this test hold is cut by
the restart, and for a moment new ones are refused; the campaign must still complete with each
result stored exactly once.

The server is private to the test (``postgres_server`` in tests/integration/conftest.py), so it
can be restarted; the broker is the private redis-server, the LLM the loopback fake.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from test_worker_stack import FAST_RECOVERY, FakeOpenAI, assert_every_result_once, start_workers

from services.campaigns.lifecycle import create_campaign
from services.campaigns.status_view import CampaignProgress, progress
from services.store import Store
from services.store.models import (
    AblationRow,
    AttributionRow,
    ClassificationRow,
    ExplanationRow,
    HeadRow,
    NeuronRow,
    PromptRow,
    ScoreRow,
    WorkItem,
)
from services.store.models import TestSetRow as HeldOutRow
from tests.conftest import tiny_campaign

pytestmark = pytest.mark.timeout(300)

# Each result table with the key that names one result: a second row under a key is a
# result written twice.
RESULT_KEYS = {
    NeuronRow: ("layer", "neuron"),
    PromptRow: ("split", "layer", "neuron", "rank"),
    AttributionRow: ("layer", "neuron"),
    HeadRow: ("layer", "neuron", "head_layer", "head"),
    ExplanationRow: ("head_id",),
    HeldOutRow: ("head_id",),
    ClassificationRow: ("head_id", "scorer", "control"),
    ScoreRow: ("head_id", "scorer", "control"),
    AblationRow: ("head_id",),
}


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        server.respond = lambda prompt: "Yes" if "Answer:" in prompt else "Active on lists of names."
        yield server


@pytest.fixture
def store(processes, postgres_server):
    """The store the whole stack shares: a database of the private PostgreSQL server."""
    url = postgres_server.create_database("lookups_results")
    processes.env.update(FAST_RECOVERY, LOOKUPS_RESULTS_URL=url)
    store = Store(url)  # migrated here, before any worker starts
    yield store
    store.dispose()


def poll(condition, timeout: float, what: str, processes):
    """``condition()`` until it returns something true; a store error (the server restarting
    under the test's own connections) only means asking again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition()
        except DBAPIError:
            found = None
        if found:
            return found
        time.sleep(0.1)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                     for p in sorted(processes.log_dir.glob("*.log")))
    pytest.fail(f"timed out waiting for {what}\n{logs}")


def item_in(store: Store, campaign_id: str, stages: tuple[str, ...], status: str | None = None) -> WorkItem | None:
    with store.session() as session:
        where = [WorkItem.campaign_id == campaign_id, WorkItem.stage.in_(stages)]
        if status is not None:
            where.append(WorkItem.status == status)
        return session.scalars(select(WorkItem).where(*where).limit(1)).first()


def duplicates(store: Store, campaign_id: str) -> dict[str, int]:
    """Per result table, how many keys hold more than one row."""
    found = {}
    with store.session() as session:
        for table, key in RESULT_KEYS.items():
            columns = [getattr(table, name) for name in key]
            twice = (select(*columns).where(table.campaign_id == campaign_id).group_by(*columns)
                     .having(func.count() > 1).subquery())
            found[table.__tablename__] = session.scalar(select(func.count()).select_from(twice))
    return found


def test_a_postgres_restart_mid_campaign_loses_nothing_and_writes_nothing_twice(
        store, processes, postgres_server, tiny_gpt2_dir, corpus_path, fake_llm):
    start_workers(processes)
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-gpt")
    campaign_id = create_campaign(store, config)

    # 1. While a gpu item computes head attributions (or, if the machine is quick, as soon as
    #    the attribute stage is planned): the item's claim is made, its result not yet stored.
    poll(lambda: item_in(store, campaign_id, ("attribute",), "running")
         or item_in(store, campaign_id, ("attribute",)), 180, "the attribute stage", processes)
    postgres_server.restart("fast")  # cuts every connection, refuses new ones until it is back

    # 2. While the llm stage runs (its items are quick with the fake LLM: any explain item, or a
    #    later stage's, means the stage was reached).
    poll(lambda: item_in(store, campaign_id, ("explain", "test_prompts", "classify")), 180,
         "the explain stage", processes)
    postgres_server.stop("fast")
    time.sleep(2)  # long enough that workers meet refused connections, not only cut ones
    postgres_server.start()

    def finished() -> CampaignProgress | None:
        state = progress(store, campaign_id)
        return state if state.status not in ("pending", "running") else None

    state = poll(finished, 240, f"campaign {campaign_id} to finish", processes)
    assert state.status == "completed", state
    assert_every_result_once(store, campaign_id, state)
    assert duplicates(store, campaign_id) == dict.fromkeys((t.__tablename__ for t in RESULT_KEYS), 0)
    assert "orchestrator round failed" in processes.log("orchestrator")  # the outage reached the stack
