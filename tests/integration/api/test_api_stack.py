"""The REST API's happy path on a real stack: a private Redis, ``lookups api`` and
``lookups worker`` as real processes, a tiny model and the local LLM; driven through
``lookups campaign`` (the CLI's HTTP client) and plain HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REPO, free_port

TOKEN = "stack-token"


def wait_until(condition, timeout: float, what: str, processes, names: list[str]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    logs = "\n".join(f"--- {n}\n{processes.log(n)[-3000:]}" for n in names)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def api(processes, stack_env, tiny_gpt2_dir, corpus_path):
    """The API and one worker on both queues, like a one-machine deployment whose operator lets
    API users read the shared corpus and the tiny model (no local path is allowed otherwise)."""
    port = free_port()
    stack_env.update({"LOOKUPS_API_TOKENS": json.dumps([TOKEN]), "LOOKUPS_API_URL": f"http://127.0.0.1:{port}",
                      "LOOKUPS_API_TOKEN": TOKEN, "LOOKUPS_ORCHESTRATE_INTERVAL_S": "2",
                      "LOOKUPS_CORPUS_ROOTS": json.dumps([str(corpus_path.parent.resolve())]),
                      "LOOKUPS_MODEL_ROOTS": json.dumps([str(Path(tiny_gpt2_dir).parent.resolve())])})
    processes.start("api", "--host", "127.0.0.1", "--port", str(port), name="api")
    processes.start("worker", "--queues", "gpu,llm", "--concurrency", "1", name="worker")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=60)  # the report renders plots: seconds on a loaded machine

    def ready():
        try:
            return client.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 60, "the API to be ready", processes, ["api"])
    yield client
    client.close()


def cli(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_campaign_through_the_api(api, processes, stack_env, tiny_gpt2_dir, corpus_path, tmp_path):
    submitted = cli(stack_env, "campaign", "submit", "--model", str(tiny_gpt2_dir), "--corpus", str(corpus_path),
                    "--neurons", "3:5,3:17", "--max-train-docs", "40", "--max-test-docs", "40",
                    "--context-length", "64", "--worth-range", "0.05,0.95", "--test-prompts-per-head", "6",
                    "--scorer", "zero-shot", "--scorer", "detection")
    assert submitted.returncode == 0, submitted.stderr
    campaign_id = submitted.stdout.strip()

    def completed():
        state = api.get(f"/v1/campaigns/{campaign_id}").json()
        assert state["status"] in ("pending", "running", "completed"), state
        return state if state["status"] == "completed" else None

    state = wait_until(completed, 300, "the campaign to complete", processes, ["api", "worker"])
    stages = {s["stage"]: s for s in state["stages"]}
    assert stages["attribute"]["done"] == 2 and all(s["failed"] == 0 for s in state["stages"])
    assert state["input_tokens"] > 0 and state["eta_s"] is None

    listed = api.get("/v1/campaigns", params={"status": "completed"}).json()
    assert [c["id"] for c in listed["data"]] == [campaign_id]
    page = api.get(f"/v1/campaigns/{campaign_id}/results", params={"limit": 1}).json()
    assert page["count"] == 2 and len(page["neurons"]) == 1 and page["neurons"][0]["prompts"]
    everything = json.loads(cli(stack_env, "campaign", "results", campaign_id, "--limit", "100").stdout)
    heads = [h for n in everything["neurons"] for h in n["heads"]]
    assert heads and all(h["explanation"] for h in heads)
    assert set(everything["summary"]["scorers"]) == {"zero-shot", "detection"}
    assert everything["headline_scorer"] == "zero-shot"
    status = cli(stack_env, "campaign", "status", campaign_id, "--json")
    assert json.loads(status.stdout)["status"] == "completed"
    report = api.get(f"/v1/campaigns/{campaign_id}/report")
    assert report.status_code == 200 and "Neuron 3:17" in report.text and "data:image/png;base64," in report.text
    assert api.post(f"/v1/campaigns/{campaign_id}/resume").status_code == 409


def test_single_jobs_run_on_the_workers(api, processes, tiny_gpt2_dir, corpus_path):
    scan = api.post("/v1/jobs/scan", json={"model": str(tiny_gpt2_dir), "corpus": str(corpus_path),
                                           "neurons": ["3:5"], "max_docs": 20, "top_k": 3, "context_length": 64})
    classify = api.post("/v1/jobs/classify", json={"request": {
        "token": " the", "explanation": "Active when the document is about sport.",
        "prompts": [{"text": "The match ended", "active": True}]}})
    assert scan.status_code == classify.status_code == 202

    def done(response):
        def check():
            job = api.get(response.headers["Location"]).json()
            assert job["status"] != "failed", job["error"]
            return job if job["status"] == "done" else None
        return check

    scanned = wait_until(done(scan), 120, "the scan job", processes, ["api", "worker"])
    hits = scanned["result"]["contexts"][0]["hits"]
    assert len(hits) == 3 and hits[0]["activation"] >= hits[-1]["activation"]
    judged = wait_until(done(classify), 180, "the classify job", processes, ["api", "worker"])
    assert judged["result"]["results"][0]["answer"] in ("yes", "no", "unparseable")
