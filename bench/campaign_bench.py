"""Campaign throughput over real Celery workers and Redis, and the queue's overhead per task.

1. Explanations scored per minute with 1 vs 2 llm worker processes (concurrency 1 each), the
   same campaign config, one gpu worker, a private redis-server. The LLM is the loopback fake
   OpenAI server with a fixed latency per call: it stands for a remote API (the deployment the
   llm queue exists for), and unlike the local llama.cpp model it does not compete with the
   workers for this machine's 2 shared cores, so the number measures the queue, not CPU
   contention.
2. Queue overhead: N trivial work items (a score item over no heads: claim, compute, store, mark
   done) through Celery + Redis with one warm worker, vs ``execute_item`` called directly in one
   process. Overhead per task = (queued - direct) / N.

    .venv/bin/python bench/campaign_bench.py [--model smollm2-135m] [--latency 0.3] [--items 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "llm"))

from fake_openai import FakeOpenAI  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.execute import execute_item  # noqa: E402
from services.campaigns.lifecycle import create_campaign, mark_queued  # noqa: E402
from services.campaigns.status_view import progress  # noqa: E402
from services.processes import RedisServer, lookups_command, start, stop_all  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import Campaign, ScoreRow, WorkItem  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "openwebtext-1k.jsonl.gz"


class Stack:
    """A private redis-server and lookups processes sharing one environment."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.redis = RedisServer(directory)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOOKUPS_DEVICE": "cpu",
                    "LOOKUPS_BROKER_URL": self.redis.url,
                    "LOOKUPS_RESULTS_URL": f"sqlite:///{directory / 'results.sqlite'}",
                    "LOOKUPS_LLM_DB_URL": f"sqlite:///{directory / 'llm.sqlite'}",
                    "LOOKUPS_ORCHESTRATE_INTERVAL_S": "0.5"}
        self.redis.start()
        self.processes: list[subprocess.Popen] = []
        self.store = Store(self.env["LOOKUPS_RESULTS_URL"])

    def start(self, *args: str, name: str) -> None:
        self.processes.append(start(lookups_command(*args), self.directory / f"{name}.log",
                                    self.env, cwd=ROOT))

    def stop(self) -> None:
        stop_all(self.processes, timeout=60)
        self.redis.stop()
        self.store.dispose()


def wait_for(condition, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        time.sleep(0.05)


def campaign_throughput(model: str, llm_workers: int, latency: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as fake:
        def respond(prompt: str) -> str:
            time.sleep(latency)
            return "Yes" if "Answer:" in prompt else "Active on lists of names."

        fake.respond = respond
        stack = Stack(Path(tmp))
        try:
            stack.start("orchestrate", name="orchestrator")
            stack.start("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "gpu@%h", name="gpu")
            for i in range(llm_workers):
                stack.start("worker", "--queues", "llm", "--concurrency", "1", "--hostname",
                            f"llm{i}@%h", name=f"llm{i}")
            llm = f"openai-compatible:{fake.url}:fake-gpt"
            config = CampaignConfig(
                model=model, neurons=["27:1263", "27:876", "27:831", "25:290"], corpus=str(CORPUS),
                max_train_docs=60, max_test_docs=60, context_length=64, top_k=10,
                prompts_per_neuron=10, worth_range=(0.05, 0.95), test_prompts_per_head=6,
                explainer=llm, classifier=llm, ablation=False)
            started = time.perf_counter()
            campaign_id = create_campaign(stack.store, config)
            wait_for(lambda: progress(stack.store, campaign_id).status not in ("pending", "running"))
            wall = time.perf_counter() - started
            state = progress(stack.store, campaign_id)
            with stack.store.session() as session:
                scored = session.scalar(select(func.count()).select_from(ScoreRow).where(
                    ScoreRow.campaign_id == campaign_id, ScoreRow.control.is_(False),
                    ScoreRow.score.is_not(None)))
                llm_items = session.execute(select(WorkItem.started_at, WorkItem.finished_at).where(
                    WorkItem.campaign_id == campaign_id, WorkItem.queue == "llm")).all()
            llm_busy = sum((f - s).total_seconds() for s, f in llm_items)
            return {"llm_workers": llm_workers, "status": state.status, "wall_s": wall,
                    "scored": scored, "llm_items": len(llm_items), "llm_item_s": llm_busy,
                    "calls": len(fake.requests), "scored_per_min": scored / wall * 60}
        finally:
            stack.stop()


def trivial_items(store: Store, n: int) -> list[int]:
    """N score items of a running campaign with no heads: the cheapest real item there is."""
    config = CampaignConfig(corpus=str(CORPUS), neurons=["0:0"], ablation=False)
    campaign_id = create_campaign(store, config)
    with store.session() as session:
        campaign = session.get(Campaign, campaign_id)
        campaign.status, campaign.stage = "running", "score"
        rows = [WorkItem(campaign_id=campaign_id, stage="score", key=f"trivial-{i}", queue="gpu",
                         status="pending") for i in range(n)]
        session.add_all(rows)
    return [r.id for r in rows]


def done_count(store: Store, ids: list[int]) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(WorkItem).where(
            WorkItem.id.in_(ids), WorkItem.status.in_(("done", "failed"))))


def queue_overhead(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        os.environ["LOOKUPS_BROKER_URL"] = stack.env["LOOKUPS_BROKER_URL"]
        try:
            direct_ids = trivial_items(stack.store, n)
            runtime = Runtime()
            started = time.perf_counter()
            outcomes = {execute_item(stack.store, runtime, i) for i in direct_ids}
            direct = time.perf_counter() - started

            from workers.app import app  # after the broker URL is set

            stack.start("worker", "--queues", "gpu", "--concurrency", "1", name="gpu")
            warm = trivial_items(stack.store, 1)
            mark_queued(stack.store, warm[0])
            app.send_task("lookups.gpu.run_item", args=[warm[0]])
            wait_for(lambda: done_count(stack.store, warm) == 1, timeout=120)

            queued_ids = trivial_items(stack.store, n)
            started = time.perf_counter()
            for item_id in queued_ids:
                mark_queued(stack.store, item_id)
                app.send_task("lookups.gpu.run_item", args=[item_id])
            wait_for(lambda: done_count(stack.store, queued_ids) == n)
            queued = time.perf_counter() - started
            return {"n": n, "outcomes": sorted(outcomes), "direct_ms": direct / n * 1000,
                    "queued_ms": queued / n * 1000, "overhead_ms": (queued - direct) / n * 1000}
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--latency", type=float, default=0.3, help="Seconds per fake LLM call.")
    parser.add_argument("--items", type=int, default=200, help="Trivial items for the overhead.")
    args = parser.parse_args()

    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}", flush=True)
    overhead = queue_overhead(args.items)
    print(f"queue overhead: {overhead}", flush=True)
    for workers in (1, 2):
        print(f"throughput: {campaign_throughput(args.model, workers, args.latency)}", flush=True)


if __name__ == "__main__":
    main()
