"""The campaign state machine in one process, no broker: stages flip once and are planned as
soon as their needs finish, results are written once, a running item is taken over only on
redelivery, cancel stops new work and resume continues.

Real store (SQLite file), real tiny model, and the LLM stages against the loopback fake OpenAI
server, so nothing of ours is mocked.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "llm"))

from lookups import InvalidInputError  # noqa: E402
from services.campaigns.execute import execute_item, run_in_process  # noqa: E402
from services.campaigns.lifecycle import (  # noqa: E402
    advance,
    cancel,
    claim,
    create_campaign,
    finish,
    resolve_campaign_id,
    resume,
)
from services.campaigns.stages import STAGES  # noqa: E402
from services.campaigns.status_view import progress  # noqa: E402
from services.store.models import (  # noqa: E402
    Campaign,
    HeadRow,
    NeuronRow,
    WorkItem,
)
from tests.unit.campaign_helpers import STAGE_NAMES, count, items, stages_of  # noqa: E402


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



@pytest.mark.slow  # runs the gpu stages of a campaign
def test_a_stage_is_planned_once_its_needs_finish_not_every_stage_before_it(store, config, runtime):
    """Once the heads are attributed, the test prompts and the ablations (gpu) are planned with
    the explanations (llm), so both queues work; classify waits for the test prompts and the
    explanations, not for the ablations; the campaign completes once the ablations are done."""
    campaign_id = create_campaign(store, config)
    pending = advance(store, campaign_id)
    while not items(store, campaign_id, "attribute") or any(
            i.status != "done" for i in items(store, campaign_id, "attribute")):
        for item_id in pending:
            assert execute_item(store, runtime, item_id) == "done"
        pending = advance(store, campaign_id)
    heads = count(store, HeadRow, campaign_id)
    assert stages_of(store, pending) == {"test_prompts": 1, "ablate": 2, "explain": heads}

    by_stage = {stage: [i.id for i in items(store, campaign_id, stage)] for stage in ("test_prompts", "ablate")}
    for item_id in [i.id for i in items(store, campaign_id, "explain")]:
        assert execute_item(store, runtime, item_id) == "done"
    assert set(stages_of(store, advance(store, campaign_id))) == {"test_prompts", "ablate"}  # classify waits

    assert execute_item(store, runtime, by_stage["test_prompts"][0]) == "done"
    pending = advance(store, campaign_id)
    assert set(stages_of(store, pending)) == {"ablate", "classify"}
    for item_id in [i for i in pending if i not in by_stage["ablate"]]:
        assert execute_item(store, runtime, item_id) == "done"
    (score,) = set(advance(store, campaign_id)) - set(by_stage["ablate"])
    assert execute_item(store, runtime, score) == "done"
    assert set(advance(store, campaign_id)) == set(by_stage["ablate"])
    assert progress(store, campaign_id).status == "running"  # the ablations are still to run

    for item_id in by_stage["ablate"]:
        assert execute_item(store, runtime, item_id) == "done"
    assert advance(store, campaign_id) == []
    final = progress(store, campaign_id)
    assert final.status == "completed" and all(s.done == s.total for s in final.stages)
    with store.session() as session:
        assert session.get(Campaign, campaign_id).summary["ablation"] is not None  # summarized at the end


@pytest.mark.slow  # runs a whole campaign in-process
def test_lookups_run_classifies_while_the_ablations_still_run(store, config, runtime):
    """In one process, classify starts once the test prompts and the explanations are done, not
    after the gpu thread's ablations too: the first ablation is held until a classification has
    finished, which happens only if classify was planned before it."""
    campaign_id = create_campaign(store, config)
    classified = threading.Event()
    held: list[bool] = []

    def stage_of(item_id: int) -> str:
        with store.session() as session:
            return session.get_one(WorkItem, item_id).stage

    def explanations_settled() -> bool:
        return all(i.status in ("done", "failed") for i in items(store, campaign_id, "explain"))

    def on_item(item_id: int, outcome: str) -> None:
        stage = stage_of(item_id)
        if stage == "test_prompts":  # the llm thread finishes the explanations meanwhile
            deadline = time.monotonic() + 60
            while not explanations_settled() and time.monotonic() < deadline:
                time.sleep(0.05)
        elif stage == "ablate" and not held:
            held.append(classified.wait(timeout=60))
        elif stage == "classify":
            classified.set()

    final = run_in_process(store, campaign_id, runtime, on_item=on_item)
    assert final.status == "completed"
    assert held == [True]
    last_ablation = items(store, campaign_id, "ablate")[-1]
    assert min(i.started_at for i in items(store, campaign_id, "classify")) < last_ablation.finished_at


def test_every_stage_lists_its_needs_before_it():
    for index, stage in enumerate(STAGES):
        assert set(stage.needs) <= set(STAGE_NAMES[:index]), stage.name


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


def test_two_runs_of_one_item_finishing_together_write_it_once(store, config, runtime):
    """An item slower than ``stale_after_s`` is sent again while its first run goes on, and both
    runs finish at once: the second waits for the first's commit and writes nothing (once,
    SQLite let both through the status check and the second failed on the unique key)."""
    campaign_id = create_campaign(store, config)
    (item_id,) = advance(store, campaign_id)
    stage, job = claim(store, item_id)
    write = stage.compute(runtime, store, job)
    writing = threading.Event()

    def slow_write(session) -> None:
        writing.set()
        time.sleep(0.5)  # the second run reaches finish meanwhile
        write(session)

    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(finish, store, item_id, slow_write)
        assert writing.wait(30)
        second = pool.submit(finish, store, item_id, write)
        assert (first.result(), second.result()) == (True, False)
    assert count(store, NeuronRow, campaign_id) == 2
    assert items(store, campaign_id, "neurons")[0].status == "done"


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



def test_latest_names_the_newest_campaign(store, config):
    with pytest.raises(InvalidInputError, match="no campaign"):
        resolve_campaign_id(store, "latest")
    first = create_campaign(store, config)
    second = create_campaign(store, config)
    assert resolve_campaign_id(store, "latest") == second
    assert resolve_campaign_id(store, first) == first
