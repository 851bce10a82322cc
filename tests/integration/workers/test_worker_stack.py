"""Campaigns over real Celery workers and a real redis-server, each a separate process.

End to end through ``lookups stack up`` with the local LLM (SmolLM2 through llama.cpp); then the
faults: a gpu worker SIGKILLed mid-task, Redis restarted mid-campaign, an LLM server answering
429. The fault tests point the LLM stages at the loopback fake OpenAI server, so they are fast
and the 429s are scripted. (No ``__init__.py`` here: it would shadow the ``workers`` package.)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parents[2] / "unit" / "llm"))
from fake_openai import FakeOpenAI, error  # noqa: E402

from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.lifecycle import create_campaign  # noqa: E402
from services.campaigns.status_view import CampaignProgress, progress  # noqa: E402
from services.processes import free_port  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import (  # noqa: E402
    AblationRow,
    AgentRoundRow,
    AttributionRow,
    Campaign,
    ClassificationRow,
    ExplanationRow,
    HeadRow,
    NeuronRow,
    PromptRow,
    ScoreRow,
    WorkItem,
)
from services.store.models import TestSetRow as HeldOutRow  # noqa: E402  (not a test class)
from tests.conftest import tiny_campaign  # noqa: E402

pytestmark = pytest.mark.timeout(240)

# Time limits far below the usual ones, so a lost task comes back within the test.
FAST_RECOVERY = {
    "LOOKUPS_TASK_SOFT_TIME_LIMIT_S": "50",
    "LOOKUPS_TASK_TIME_LIMIT_S": "60",
    "LOOKUPS_VISIBILITY_TIMEOUT_S": "90",
    "LOOKUPS_STALE_AFTER_S": "8",
    "LOOKUPS_ORCHESTRATE_INTERVAL_S": "0.5",
}


@pytest.fixture
def env(processes):
    processes.env.update(FAST_RECOVERY)
    return processes.env


@pytest.fixture
def store(env):
    store = Store(env["LOOKUPS_RESULTS_URL"])  # migrated here, before any worker starts
    yield store
    store.dispose()


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        server.respond = lambda prompt: "Yes" if "Answer:" in prompt else "Active on lists of names."
        yield server


def wait_until(condition, timeout: float, what: str, processes=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    logs = "" if processes is None else "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in processes.log_dir.glob("*.log"))
    pytest.fail(f"timed out waiting for {what}\n{logs}")


def wait_completed(store: Store, campaign_id: str, processes, timeout: float = 180) -> CampaignProgress:
    def finished():
        state = progress(store, campaign_id)
        return state if state.status not in ("pending", "running") else None

    state = wait_until(finished, timeout, f"campaign {campaign_id} to finish", processes)
    # The failures alone: pytest cuts a whole state's repr before them.
    assert state.status == "completed", (state.status, state.error, state.failures)
    return state


def assert_every_result_once(store: Store, campaign_id: str, state: CampaignProgress) -> None:
    """Every stage finished without failures, and each result table holds exactly the rows its
    done items produce: nothing lost, nothing written twice."""
    assert all(s.failed == 0 and s.done == s.total and s.running == s.pending == 0 for s in state.stages)
    done = {s.stage: s.done for s in state.stages}

    def rows(table, *where) -> int:
        with store.session() as session:
            return session.scalar(select(func.count()).select_from(table).where(
                table.campaign_id == campaign_id, *where))

    heads = rows(HeadRow)
    assert heads >= 2
    assert rows(NeuronRow) == 2 and done["neurons"] == 1
    assert rows(PromptRow) >= done["truncate"] == 2
    assert rows(AttributionRow) == done["attribute"] == 2
    assert rows(ExplanationRow) == done["explain"] == heads
    assert rows(HeldOutRow) == heads and done["test_prompts"] == 1
    assert rows(ClassificationRow) == done["classify"] >= 1
    assert rows(ScoreRow) == heads + rows(ClassificationRow, ClassificationRow.control.is_(True))
    assert rows(AblationRow) == heads and done["ablate"] == 2  # one item per neuron
    with store.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert "explanations" in campaign.summary and "ablation" in campaign.summary


def item_where(store: Store, campaign_id: str, **where) -> WorkItem | None:
    with store.session() as session:
        return session.scalars(select(WorkItem).where(
            WorkItem.campaign_id == campaign_id,
            *(getattr(WorkItem, k) == v for k, v in where.items())).limit(1)).first()


def submit_over_http(port: int, token: str, config: CampaignConfig, processes) -> str:
    """POST the campaign to the stack's REST api, as a user would, once it answers."""
    import httpx

    base = f"http://127.0.0.1:{port}"

    def api_up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(api_up, 60, "the stack's api to answer", processes)
    response = httpx.post(f"{base}/v1/campaigns", json=config.model_dump(mode="json"),
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_stack_up_runs_a_campaign_end_to_end_with_the_local_llm(
        env, store, processes, tiny_gpt2_dir, corpus_path, tmp_path):
    broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: stack up starts Redis
    port = free_port()
    env.pop("LOOKUPS_API_TOKENS", None)  # a fresh machine: the first run generates the api's token
    env.update(LOOKUPS_BROKER_URL=broker, LOOKUPS_ENVIRONMENT="production",
               # the operator lets API users read the shared corpus and the tiny model
               LOOKUPS_CORPUS_ROOTS=json.dumps([str(corpus_path.parent.resolve())]),
               LOOKUPS_MODEL_ROOTS=json.dumps([str(Path(tiny_gpt2_dir).parent.resolve())]))
    stack = processes.start("stack", "up", "--llm-concurrency", "1", "--port", str(port),
                            "--state-dir", str(tmp_path / "stack"), name="stack")
    token_file = tmp_path / "stack" / "api-token"
    wait_until(lambda: "api token" in processes.log("stack"), 60, "stack up to print the api token", processes)
    token = token_file.read_text().strip()
    assert token in processes.log("stack") and token_file.stat().st_mode & 0o777 == 0o600
    campaign_id = submit_over_http(port, token, tiny_campaign(tiny_gpt2_dir, corpus_path), processes)

    state = wait_completed(store, campaign_id, processes)
    assert_every_result_once(store, campaign_id, state)
    assert state.input_tokens > 0 and state.eta_s is None
    logs = tmp_path / "stack" / "logs"
    assert {p.name for p in logs.glob("*.log")} == {
        "redis.log", "orchestrator.log", "gpu-worker.log", "llm-worker.log", "api.log"}
    assert "redis " in processes.log("stack") and str(logs / "gpu-worker.log") in processes.log("stack")
    assert (tmp_path / "stack" / "redis" / "appendonlydir").is_dir()

    processes.kill(stack, 15)  # SIGTERM reaches every child
    assert stack.returncode == 0
    assert "stopping" in processes.log("stack")


def test_stack_up_serving_other_machines_without_api_tokens_starts_nothing(env, processes, tmp_path):
    env.pop("LOOKUPS_API_TOKENS", None)
    env["LOOKUPS_ENVIRONMENT"] = "production"
    stack = processes.start("stack", "up", "--host", "0.0.0.0", "--state-dir", str(tmp_path / "stack"),
                            name="stack")
    assert stack.wait(timeout=60) == 2
    said = " ".join(processes.log("stack").split())  # one message (rich wraps it at the terminal's width)
    assert said.startswith("error: --host 0.0.0.0:") and said.count("error:") == 1 and "LOOKUPS_API_TOKENS" in said
    assert not (tmp_path / "stack").exists()


def start_workers(processes, gpu_name: str = "gpu", llm_concurrency: int = 2) -> None:
    processes.start("orchestrate", name="orchestrator")
    processes.start("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", f"{gpu_name}@%h",
                    name=gpu_name)
    processes.start("worker", "--queues", "llm", "--concurrency", str(llm_concurrency), "--hostname", "llm@%h",
                    name="llm")


def test_a_gpu_worker_killed_mid_task_is_replaced_and_every_result_is_stored_once(
        store, processes, tiny_gpt2_dir, corpus_path, fake_llm):
    start_workers(processes)
    gpu = processes.started[1]
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-gpt")
    campaign_id = create_campaign(store, config)

    running = wait_until(lambda: item_where(store, campaign_id, stage="scan", status="running"),
                         120, "the scan item to run", processes)
    processes.kill(gpu)  # SIGKILL the worker and its pool child, mid-task
    processes.start("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "gpu2@%h",
                    name="gpu2")

    state = wait_completed(store, campaign_id, processes)
    assert_every_result_once(store, campaign_id, state)
    with store.session() as session:
        assert session.get(WorkItem, running.id).attempts >= 2  # the killed item ran again


def test_a_redis_restart_mid_campaign_loses_nothing(
        store, processes, redis_server, tiny_gpt2_dir, corpus_path, fake_llm):
    start_workers(processes)
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-gpt")
    campaign_id = create_campaign(store, config)

    wait_until(lambda: item_where(store, campaign_id, stage="truncate"), 120,
               "the truncate stage", processes)
    redis_server.stop()  # no append-only file: every queued message is lost
    time.sleep(2)
    redis_server.start()

    state = wait_completed(store, campaign_id, processes)
    assert_every_result_once(store, campaign_id, state)


def test_llm_429s_are_retried_until_the_campaign_completes(
        env, store, processes, tiny_gpt2_dir, corpus_path, fake_llm):
    env.update({"LOOKUPS_LLM_MAX_ATTEMPTS": "2", "LOOKUPS_LLM_RETRY_INITIAL_S": "0.05",
                "LOOKUPS_LLM_RETRY_MAX_S": "0.2"})
    # Four 429s: the client's two tries fail twice, so the task itself is retried by Celery.
    fake_llm.faults.extend(error(429, "rate limited", {"Retry-After": "0"}) for _ in range(4))
    start_workers(processes)
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-gpt")
    campaign_id = create_campaign(store, config)

    state = wait_completed(store, campaign_id, processes)
    assert_every_result_once(store, campaign_id, state)
    assert not fake_llm.faults  # every 429 was served
    with store.session() as session:
        attempts = session.scalars(select(WorkItem.attempts).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == "explain"))
        assert max(attempts) >= 2  # a task-level retry, not only the client's


def agent_answer(prompt: str) -> str:
    """The fake explainer speaks the agent's format; the judge says Yes, or names example 1."""
    if "numbered examples" in prompt:
        return "1"
    if "Answer:" in prompt:
        return "Yes"
    return ("EXPLANATION: Active on lists of names.\nACTIVE: Alice, Bob and the\n"
            "INACTIVE: It rained all day in the")


def test_the_agent_loop_runs_on_the_stack_and_survives_a_killed_gpu_worker(
        store, processes, tiny_gpt2_dir, corpus_path, fake_llm):
    """Proposals on the llm queue, probe measurements on the gpu queue; the gpu worker is
    killed once the first measurement is queued, and its replacement finishes the loop."""
    fake_llm.respond = agent_answer
    start_workers(processes)
    gpu = processes.started[1]
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-agent")
    config = config.model_copy(update={"explainer_strategy": "agent", "agent_rounds": 2})
    campaign_id = create_campaign(store, config)

    wait_until(lambda: item_where(store, campaign_id, stage="agent", queue="gpu"), 120,
               "the first probe measurement", processes)
    processes.kill(gpu)
    processes.start("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "gpu2@%h",
                    name="gpu2")

    state = wait_completed(store, campaign_id, processes)
    assert all(s.failed == 0 and s.done == s.total for s in state.stages)
    with store.session() as session:
        heads = list(session.scalars(select(HeadRow).where(HeadRow.campaign_id == campaign_id)))
        rounds = session.execute(select(AgentRoundRow.head_id, AgentRoundRow.round, AgentRoundRow.payload).where(
            AgentRoundRow.campaign_id == campaign_id)).all()
        explained = session.scalar(select(func.count()).select_from(ExplanationRow).where(
            ExplanationRow.campaign_id == campaign_id))
        queues = dict(session.execute(select(WorkItem.key, WorkItem.queue).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == "agent")).all())
    assert heads and explained == len(heads)
    assert sorted((h, r) for h, r, _ in rounds) == sorted((h.id, r) for h in heads for r in (0, 1))
    assert all(p.measurements and p.evaluation for _, _, p in rounds)
    assert {k.rsplit("/", 1)[-1]: q for k, q in queues.items()} == {"propose": "llm", "measure": "gpu",
                                                                     "final": "llm"}


# Six neurons of the tiny model: six heads worth explaining, so six explain items at once.
SIX_NEURONS = ["3:5", "3:17", "2:5", "2:17", "3:40", "2:40"]


def assert_every_head_explained(store: Store, campaign_id: str) -> None:
    with store.session() as session:
        heads = set(session.scalars(select(HeadRow.id).where(HeadRow.campaign_id == campaign_id)))
        explained = list(session.scalars(select(ExplanationRow.head_id).where(
            ExplanationRow.campaign_id == campaign_id)))
    assert len(heads) >= 3 and sorted(explained) == sorted(heads)


def test_a_fresh_stack_with_several_llm_processes_explains_every_head(
        env, store, processes, tiny_gpt2_dir, corpus_path, fake_llm):
    """The crash run's set-up: an llm worker with four pool processes and no LLM cache yet, so
    the explain items open (and create) the cache in several processes at once. Once, two of
    them collided creating its tables and a head was left unexplained in a 'completed'
    campaign; now every head has its explanation and the campaign is completed."""
    cache = Path(env["LOOKUPS_LLM_DB_URL"].removeprefix("sqlite:///"))
    assert not cache.exists()
    start_workers(processes, llm_concurrency=4)
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-fresh")
    campaign_id = create_campaign(store, config.model_copy(update={"neurons": SIX_NEURONS}))

    state = wait_completed(store, campaign_id, processes)
    assert all(s.failed == 0 and s.done == s.total for s in state.stages) and state.failures == []
    assert_every_head_explained(store, campaign_id)
    assert cache.exists()


def test_llm_items_wait_out_a_locked_llm_cache(env, store, processes, tiny_gpt2_dir, corpus_path, fake_llm):
    """The LLM cache's database stays locked by another process (an exclusive transaction)
    while the explain items start: each try gives up after the store's 30 s busy wait with
    'database is locked', a transient error, so the task is retried by Celery instead of the
    item failing. Once the lock is gone every item gets through."""
    import sqlite3

    env["LOOKUPS_ITEM_RETRY_INITIAL_S"] = "0.5"
    cache = Path(env["LOOKUPS_LLM_DB_URL"].removeprefix("sqlite:///"))
    holder = sqlite3.connect(cache, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start_workers(processes, llm_concurrency=3)
        config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-locked")
        campaign_id = create_campaign(store, config)

        def retried() -> bool:
            with store.session() as session:
                most = session.scalar(select(func.max(WorkItem.attempts)).where(
                    WorkItem.campaign_id == campaign_id, WorkItem.stage == "explain"))
            return (most or 0) >= 2

        wait_until(retried, 150, "an explain item's second try", processes)
        with store.session() as session:
            assert not session.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.campaign_id == campaign_id, WorkItem.status == "failed"))
    finally:
        holder.rollback()
        holder.close()

    state = wait_completed(store, campaign_id, processes)
    assert_every_result_once(store, campaign_id, state)
    assert "database is locked" in processes.log("llm")


def test_two_gpu_workers_share_a_sharded_scan_and_its_top_k_is_the_single_pass_one(
        env, store, processes, tiny_gpt2_dir, corpus_path, fake_llm, tmp_path):
    """256 train documents in four scan shards over two gpu worker processes: the campaign
    completes, every shard records its progress, and the merged top K equals, exactly, the one
    scan item this process runs over the same split."""
    from services.campaigns.execute import execute_item
    from services.campaigns.lifecycle import advance
    from services.campaigns.stages.scan import train_hits
    from services.runtime import Runtime
    from services.settings import Settings

    processes.start("orchestrate", name="orchestrator")
    for name in ("gpu1", "gpu2"):
        processes.start("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", f"{name}@%h", name=name)
    processes.start("worker", "--queues", "llm", "--concurrency", "2", "--hostname", "llm@%h", name="llm")
    config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake_llm.url}:fake-shards").model_copy(
        update={"max_train_docs": 256, "scan_shard_docs": 64})
    campaign_id = create_campaign(store, config)

    state = wait_completed(store, campaign_id, processes)
    scan = next(s for s in state.stages if s.stage == "scan")
    assert (scan.total, scan.done) == (4, 4)
    assert scan.work is not None and (scan.work.done, scan.work.total) == (256, 256)
    assert all("lookups.gpu.run_item" in processes.log(name) for name in ("gpu1", "gpu2"))

    single = Store(f"sqlite:///{tmp_path / 'single.sqlite'}")
    single_id = create_campaign(single, config.model_copy(update={"scan_shard_docs": 256}))
    runtime = Runtime(Settings(device="cpu"))
    for _ in range(2):  # neurons, then the one scan item
        for item_id in advance(single, single_id):
            assert execute_item(single, runtime, item_id) == "done"
    with store.session() as sharded, single.session() as one:
        for layer, neuron in ((3, 5), (3, 17)):
            assert train_hits(sharded, campaign_id, layer, neuron, 8) == train_hits(one, single_id, layer, neuron, 8)
    single.dispose()
