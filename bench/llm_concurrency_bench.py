"""LLM calls per second with concurrency 8 vs 1, in ``lookups run`` and through the Celery stack.

The explainer and judge are the loopback fake OpenAI server answering every call after a fixed
latency (default 0.3 s, a remote API's); the subject model is SmolLM2-135M on a small campaign.
"Concurrency C" is the one knob a deployment turns: LOOKUPS_LLM_MAX_CONCURRENCY=C (calls in
flight per backend in a process), and C LLM items at once (``lookups run --llm-concurrency``,
which defaults to it; the llm worker's ``--concurrency C`` threads). Calls/s counts the requests
the server answered over the wall time of the explain and classify stages (first item started
to last item finished, per stage), so the gpu stages between them do not count. Each run has a
fresh results store and LLM cache, so every run makes the same calls.

``--explanations`` sets what the fake explainer answers. ``distinct`` (the default) gives each
explain prompt its own explanation, as a real explainer does, so every head's classify prompts are
calls of their own. ``shared`` answers every explain prompt with the same sentence, as the tables
before 2026-12-03 did: then most classify prompts repeat another head's, are answered from the
LLM cache, and the classify stage measures the items' Python work more than the calls.

    .venv/bin/python bench/llm_concurrency_bench.py [--latency 0.3] [--concurrency 1 8]
        [--explanations distinct|shared]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "llm"))

from campaign_bench import CORPUS, Stack, wait_for  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.execute import run_in_process  # noqa: E402
from services.campaigns.lifecycle import create_campaign  # noqa: E402
from services.campaigns.status_view import progress  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from services.settings import get_settings  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import WorkItem  # noqa: E402

CALL_STAGES = ("explain", "classify")


def config(model: str, llm: str) -> CampaignConfig:
    return CampaignConfig(
        model=model, neurons=["27:1263", "25:290"], corpus=str(CORPUS),
        max_train_docs=30, max_test_docs=30, context_length=48, top_k=10, prompts_per_neuron=10,
        worth_range=(0.05, 0.95), test_prompts_per_head=6, explainer=llm, classifier=llm, ablation=False)


def stage_seconds(store: Store, campaign_id: str) -> float:
    """Wall time of the stages that call the LLM: per stage, first start to last finish."""
    total = 0.0
    with store.session() as session:
        for stage in CALL_STAGES:
            first, last = session.execute(select(func.min(WorkItem.started_at), func.max(WorkItem.finished_at))
                                          .where(WorkItem.campaign_id == campaign_id, WorkItem.stage == stage)).one()
            total += (last - first).total_seconds()
    return total


def measure(store: Store, campaign_id: str, fake: FakeOpenAI, concurrency: int, path: str) -> dict:
    state = progress(store, campaign_id)
    seconds = stage_seconds(store, campaign_id)
    items = {s.stage: s.done for s in state.stages if s.stage in CALL_STAGES}
    return {"path": path, "concurrency": concurrency, "status": state.status, "items": items,
            "calls": len(fake.requests), "llm_stage_s": round(seconds, 2),
            "calls_per_s": round(len(fake.requests) / seconds, 2)}


def fake_server(latency: float, explanations: str = "distinct") -> FakeOpenAI:
    fake = FakeOpenAI()

    def respond(prompt: str) -> str:
        time.sleep(latency)
        if "Answer:" in prompt:
            return "Yes"
        if explanations == "shared":
            return "Active on lists of names."
        return f"Active on lists of names ({hashlib.sha256(prompt.encode()).hexdigest()[:8]})."

    fake.respond = respond
    return fake


def item_path(concurrency: int, latency: float, n: int = 48) -> dict:
    """The explain item's own path without the store: ``explain_head`` (runtime.llm, the template,
    the one call path) for N distinct heads, C at a time, as ``run_in_process`` runs them."""
    from concurrent.futures import ThreadPoolExecutor

    from lookups import ExplainRequest
    from services.work import ExplainWork, explain_head

    with tempfile.TemporaryDirectory() as tmp, fake_server(latency) as fake:
        os.environ.update(LOOKUPS_LLM_MAX_CONCURRENCY=str(concurrency), LOOKUPS_LLM_DB_URL=f"sqlite:///{tmp}/llm.sqlite")
        runtime = Runtime(get_settings())
        works = [ExplainWork(backend=f"openai-compatible:{fake.url}:fake-gpt", request=ExplainRequest(
            token=" right", active_examples=[f"head {i} turned"], inactive_examples=["nothing"])) for i in range(n)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda work: explain_head(runtime, work), works))
        seconds = time.perf_counter() - started
        return {"path": "explain items", "concurrency": concurrency, "calls": len(fake.requests),
                "seconds": round(seconds, 2), "calls_per_s": round(len(fake.requests) / seconds, 2)}


def in_process(model: str, concurrency: int, latency: float, explanations: str) -> dict:
    """``lookups run``'s path: ``run_in_process`` with ``llm_concurrency``."""
    with tempfile.TemporaryDirectory() as tmp, fake_server(latency, explanations) as fake:
        os.environ.update(LOOKUPS_LLM_MAX_CONCURRENCY=str(concurrency), LOOKUPS_DEVICE="cpu",
                          LOOKUPS_LLM_DB_URL=f"sqlite:///{tmp}/llm.sqlite")
        store = Store(f"sqlite:///{tmp}/results.sqlite")
        campaign_id = create_campaign(store, config(model, f"openai-compatible:{fake.url}:fake-gpt"))
        run_in_process(store, campaign_id, Runtime(get_settings()), llm_concurrency=concurrency)
        result = measure(store, campaign_id, fake, concurrency, "lookups run")
        store.dispose()
        return result


def celery(model: str, concurrency: int, latency: float, explanations: str) -> dict:
    """One gpu worker and one llm worker of ``--concurrency C`` (its default pool: threads)."""
    with tempfile.TemporaryDirectory() as tmp, fake_server(latency, explanations) as fake:
        stack = Stack(Path(tmp))
        stack.env["LOOKUPS_LLM_MAX_CONCURRENCY"] = str(concurrency)
        try:
            stack.start("orchestrate", name="orchestrator")
            stack.start("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "gpu@%h", name="gpu")
            stack.start("worker", "--queues", "llm", "--concurrency", str(concurrency), "--hostname", "llm@%h",
                        name="llm")
            campaign_id = create_campaign(stack.store, config(model, f"openai-compatible:{fake.url}:fake-gpt"))
            wait_for(lambda: progress(stack.store, campaign_id).status not in ("pending", "running"))
            return measure(stack.store, campaign_id, fake, concurrency, "celery")
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--latency", type=float, default=0.3, help="Seconds per fake LLM call.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--explanations", choices=["distinct", "shared"], default="distinct",
                        help="What the fake explainer answers: one explanation per prompt, or one for all.")
    args = parser.parse_args()

    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} latency={args.latency} "
          f"explanations={args.explanations}", flush=True)
    results = [item_path(c, args.latency) for c in args.concurrency]
    for result in results:
        print(result, flush=True)
    for path in (in_process, celery):
        results = [path(args.model, c, args.latency, args.explanations) for c in args.concurrency]
        for result in results:
            print(result, flush=True)
        print(f"{results[0]['path']}: {results[-1]['calls_per_s'] / results[0]['calls_per_s']:.2f}x calls/s "
              f"at concurrency {args.concurrency[-1]} vs {args.concurrency[0]}", flush=True)


if __name__ == "__main__":
    main()
