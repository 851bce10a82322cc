"""The REST API under a burst of load over loopback (issue 13): status polls and submissions at once.

Starts ``lookups api`` as users start it (one uvicorn process, production settings, a bearer
token, the in-process reconcile loop), with a private redis-server as its broker, so every
submission is stored, planned and enqueued (no worker runs: campaigns stay queued), and a
results store (SQLite in a temporary folder unless --results-url names another). Seeds a few
campaigns, then each round fires ``--polls`` GET /v1/campaigns/{id} and ``--submissions``
POST /v1/campaigns together, all in flight at once (httpx, asyncio, one connection each).
Prints each request's status codes and the latency percentiles; exits 1 on any 5xx or
connection error.

    .venv/bin/python bench/api_load.py [--polls 200] [--submissions 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from services.processes import RedisServer, free_port, listening, lookups_command, start, stop  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "openwebtext-1k.jsonl.gz"
TOKEN = "bench-token-0123456789"


def campaign(corpus: Path, index: int) -> dict:
    """A small campaign as a client would submit it (never run here: no worker listens)."""
    return {"name": f"load-{index}", "model": "smollm2-135m", "corpus": str(corpus), "neurons": ["27:1263"],
            "max_train_docs": 20, "max_test_docs": 10, "context_length": 64}


@dataclass
class Results:
    """Status code and seconds of each request, per kind ("poll", "submit")."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"poll": [], "submit": []})
    statuses: dict[str, Counter] = field(default_factory=lambda: {"poll": Counter(), "submit": Counter()})
    wall_s: float = 0.0  # from the first request sent to the last answer

    def add(self, other: Results) -> None:
        for kind in self.latencies:
            self.latencies[kind] += other.latencies[kind]
            self.statuses[kind] += other.statuses[kind]
        self.wall_s += other.wall_s

    @property
    def server_errors(self) -> int:
        """5xx answers, and requests that got no answer at all (counted as status 0)."""
        return sum(n for counts in self.statuses.values() for code, n in counts.items() if code >= 500 or code == 0)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class Api:
    """``lookups api`` on a free loopback port with a private redis-server."""

    def __init__(self, directory: Path, results_url: str | None = None, corpus: Path = CORPUS):
        self.directory = directory
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.redis = RedisServer(directory / "redis")
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOOKUPS_ENVIRONMENT": "production",
                    "LOOKUPS_API_TOKENS": json.dumps([TOKEN]), "LOOKUPS_BROKER_URL": self.redis.url,
                    "LOOKUPS_RESULTS_URL": results_url or f"sqlite:///{directory / 'results.sqlite'}",
                    "LOOKUPS_CORPUS_ROOTS": json.dumps([str(corpus.parent)]),
                    "LOOKUPS_API_SUBMISSIONS_PER_MINUTE": "0"}  # measure the API, not the limiter's 429s
        self.process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.directory / "api.log"

    def __enter__(self) -> Api:
        self.redis.start()
        self.process = start(lookups_command("api", "--port", str(self.port)), self.log, self.env, cwd=ROOT)
        deadline = time.monotonic() + 120
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"lookups api did not come up:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        if not listening("127.0.0.1", self.port, timeout=0.2):
            return False
        try:
            return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *_exc) -> None:
        if self.process is not None:
            stop(self.process)
        self.redis.stop()


async def _request(client: httpx.AsyncClient, kind: str, method: str, url: str, results: Results,
                   **kwargs) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError:
        response = None
    results.latencies[kind].append(time.perf_counter() - started)
    results.statuses[kind][response.status_code if response is not None else 0] += 1
    return response


async def seed(base: str, corpus: Path, count: int) -> list[str]:
    """Submit ``count`` campaigns one after another; their ids, for the polls."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        ids = []
        for index in range(count):
            response = await client.post("/v1/campaigns", json=campaign(corpus, index))
            response.raise_for_status()
            ids.append(response.json()["id"])
        return ids


async def burst(base: str, corpus: Path, campaign_ids: list[str], polls: int, submissions: int,
                round_index: int = 0) -> Results:
    """``polls`` status polls and ``submissions`` submissions, all in flight at once."""
    results = Results()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120,
                                 limits=limits) as client:
        calls = [_request(client, "poll", "GET", f"/v1/campaigns/{campaign_ids[i % len(campaign_ids)]}", results)
                 for i in range(polls)]
        calls += [_request(client, "submit", "POST", "/v1/campaigns", results,
                           json=campaign(corpus, 1000 * (round_index + 1) + i)) for i in range(submissions)]
        order = [calls[i] for i in _interleaved(polls, submissions)]
        started = time.perf_counter()
        await asyncio.gather(*order)
        results.wall_s = time.perf_counter() - started
    return results


def _interleaved(polls: int, submissions: int) -> list[int]:
    """Indices of the calls (polls first, then submissions) with the submissions spread evenly
    among the polls, so that they meet polls in flight."""
    slots = [(i / max(polls, 1), i) for i in range(polls)]
    slots += [((j + 0.5) / submissions, polls + j) for j in range(submissions)]
    return [index for _, index in sorted(slots)]


@dataclass
class LoadRun:
    rounds: list[Results]
    campaigns_stored: int  # seeded, warm-up and burst submissions the store holds afterwards
    messages_enqueued: int  # tasks waiting in the broker's queues (no worker takes them)


def run(polls: int = 200, submissions: int = 20, rounds: int = 1, seeded: int = 5,
        results_url: str | None = None, corpus: Path = CORPUS, directory: Path | None = None) -> LoadRun:
    """Start the API, seed campaigns, and run ``rounds`` bursts."""
    import redis
    from sqlalchemy import func, select

    from services.store import Store
    from services.store.models import Campaign

    with tempfile.TemporaryDirectory(prefix="lookups-api-load-") as tmp, \
            Api(directory or Path(tmp), results_url, corpus) as api:
        campaign_ids = asyncio.run(seed(api.base, corpus, seeded))
        asyncio.run(burst(api.base, corpus, campaign_ids, min(polls, 20), 1, round_index=99))  # warm up
        results = [asyncio.run(burst(api.base, corpus, campaign_ids, polls, submissions, round_index=r))
                   for r in range(rounds)]
        store = Store(api.env["LOOKUPS_RESULTS_URL"], migrate=False)
        with store.session() as session:
            stored = session.scalar(select(func.count()).select_from(Campaign))
        store.dispose()
        with redis.Redis.from_url(api.redis.url) as broker:
            enqueued = sum(broker.llen(queue) for queue in ("gpu", "llm"))
    return LoadRun(results, stored, enqueued)


def summary(results: Results) -> dict:
    out = {}
    for kind in ("poll", "submit"):
        values = results.latencies[kind]
        if values:
            out[kind] = {"n": len(values), "statuses": dict(sorted(results.statuses[kind].items())),
                         "p50_ms": 1000 * percentile(values, 50), "p95_ms": 1000 * percentile(values, 95),
                         "p99_ms": 1000 * percentile(values, 99), "max_ms": 1000 * max(values),
                         "mean_ms": 1000 * statistics.fmean(values)}
    out["5xx"] = results.server_errors
    out["wall_s"] = results.wall_s
    out["requests_per_s"] = sum(len(v) for v in results.latencies.values()) / results.wall_s if results.wall_s else 0.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeded", type=int, default=5, help="Campaigns the polls spread over.")
    parser.add_argument("--results-url", default=None, help="Results store (default: SQLite in a temp folder).")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    started = time.perf_counter()
    done = run(args.polls, args.submissions, args.rounds, args.seeded, args.results_url)
    total = Results()
    for index, result in enumerate(done.rounds):
        total.add(result)
        print(f"round {index + 1}: {json.dumps(summary(result))}")
    print(f"all rounds: {json.dumps(summary(total), indent=2)}")
    submitted = args.seeded + 1 + args.submissions * args.rounds
    print(f"campaigns submitted {submitted}, stored {done.campaigns_stored}, "
          f"first-stage tasks waiting in the broker {done.messages_enqueued}")
    print(f"wall {time.perf_counter() - started:.1f} s; load average after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if total.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
