"""The campaign state machine in one process, no broker: stages flip once, results are written
once, cancel stops new work, resume continues, a failed item is recorded and the stage goes on.

Real store (SQLite file), real tiny model, and the LLM stages against the loopback fake OpenAI
server, so nothing of ours is mocked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI, error  # noqa: E402

from contract import InvalidInputError  # noqa: E402
from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.execute import execute_item, run_in_process  # noqa: E402
from services.campaigns.progress import (  # noqa: E402
    advance,
    cancel,
    claim,
    create_campaign,
    finish,
    progress,
    resolve_campaign_id,
    resume,
)
from services.store import Store  # noqa: E402
from services.store.models import Campaign, ExplanationRow, HeadRow, NeuronRow, WorkItem  # noqa: E402
from tests.conftest import tiny_campaign  # noqa: E402


def answer(prompt: str) -> str:
    return "Yes" if "Answer:" in prompt else "It is active when the document is a list."


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        server.respond = answer
        yield server


@pytest.fixture
def config(tiny_gpt2_dir, corpus_path, fake_llm, tmp_path) -> CampaignConfig:
    # A model name of its own per test, so no test answers from another's LLM cache.
    return tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-{tmp_path.name}")


def items(store: Store, campaign_id: str, stage: str) -> list[WorkItem]:
    with store.session() as session:
        return list(session.scalars(select(WorkItem).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == stage).order_by(WorkItem.id)))


def count(store: Store, table, campaign_id: str) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(table).where(table.campaign_id == campaign_id))


def test_advance_twice_flips_the_stage_once(store, config, runtime):
    campaign_id = create_campaign(store, config)
    first = advance(store, campaign_id)
    assert advance(store, campaign_id) == first
    assert len(items(store, campaign_id, "neurons")) == 1

    assert execute_item(store, runtime, first[0]) == "done"
    scan = advance(store, campaign_id)
    assert advance(store, campaign_id) == scan
    assert len(items(store, campaign_id, "scan")) == 1
    with store.session() as session:
        assert session.get(Campaign, campaign_id).stage == "scan"


def test_finish_twice_writes_once_and_a_redelivered_item_is_skipped(store, config, runtime):
    campaign_id = create_campaign(store, config)
    (item_id,) = advance(store, campaign_id)
    stage, job = claim(store, item_id)
    write = stage.compute(runtime, store, job)
    assert finish(store, item_id, write) is True
    assert finish(store, item_id, write) is False
    assert count(store, NeuronRow, campaign_id) == 2
    assert execute_item(store, runtime, item_id) == "skipped"  # the task delivered again
    assert count(store, NeuronRow, campaign_id) == 2
    assert items(store, campaign_id, "neurons")[0].attempts == 1


def test_a_running_item_is_taken_over_only_on_redelivery(store, config, runtime):
    campaign_id = create_campaign(store, config)
    (item_id,) = advance(store, campaign_id)
    assert claim(store, item_id) is not None  # a worker starts it, then is lost
    assert claim(store, item_id) is None  # a duplicate message while it runs is dropped
    assert execute_item(store, runtime, item_id, takeover=True) == "done"  # broker redelivery
    assert items(store, campaign_id, "neurons")[0].attempts == 2
    assert count(store, NeuronRow, campaign_id) == 2


@pytest.mark.slow  # runs a whole campaign in-process
def test_cancel_stops_new_work_and_resume_continues(store, config, runtime):
    campaign_id = create_campaign(store, config)
    (neurons,) = advance(store, campaign_id)
    execute_item(store, runtime, neurons)
    (scan,) = advance(store, campaign_id)

    cancel(store, campaign_id)
    assert execute_item(store, runtime, scan) == "skipped"
    assert advance(store, campaign_id) == []
    assert progress(store, campaign_id).status == "cancelled"
    assert items(store, campaign_id, "scan")[0].status == "pending"

    resume(store, campaign_id)
    final = run_in_process(store, campaign_id, runtime)
    assert final.status == "completed"
    assert items(store, campaign_id, "scan")[0].attempts == 1
    assert all(s.failed == 0 and s.done == s.total for s in final.stages)
    assert final.input_tokens > 0


@pytest.mark.slow  # runs a whole campaign in-process
def test_a_failed_item_is_recorded_and_the_stage_goes_on(store, config, runtime, fake_llm):
    fake_llm.faults.append(error(400, "this prompt is refused"))  # the first explain call only
    campaign_id = create_campaign(store, config)
    final = run_in_process(store, campaign_id, runtime)

    assert final.status == "completed"
    explain = next(s for s in final.stages if s.stage == "explain")
    assert explain.failed == 1 and explain.done == explain.total - 1 >= 1
    failed = [i for i in items(store, campaign_id, "explain") if i.status == "failed"]
    assert "this prompt is refused" in failed[0].error
    assert count(store, ExplanationRow, campaign_id) == count(store, HeadRow, campaign_id) - 1
    score = next(s for s in final.stages if s.stage == "score")
    assert score.done == 1


def test_latest_names_the_newest_campaign(store, config):
    with pytest.raises(InvalidInputError, match="no campaign"):
        resolve_campaign_id(store, "latest")
    first = create_campaign(store, config)
    second = create_campaign(store, config)
    assert resolve_campaign_id(store, "latest") == second
    assert resolve_campaign_id(store, first) == first
