"""Validation, auth, size limits, 404s and broker outages, against the real app and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONFIG = {"corpus": "/data/corpus.jsonl", "neurons": ["3:5"], "model": "tiny", "name": "t"}


def test_auth_required(client):
    client.headers.pop("Authorization")
    assert client.get("/v1/campaigns").status_code == 401
    assert client.get("/v1/campaigns").headers["WWW-Authenticate"] == "Bearer"
    wrong = client.get("/v1/campaigns", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["detail"] == "invalid bearer token"
    assert client.get("/healthz").status_code == 200  # probes stay open


def test_refuses_to_start_without_tokens_outside_development(settings):
    from api.app import create_app

    with pytest.raises(ValueError, match="LOOKUPS_API_TOKENS"):
        create_app(settings.model_copy(update={"api_tokens": []}))


def test_development_mode_needs_no_token(settings, store):
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(settings.model_copy(update={"api_tokens": [], "environment": "development"}), store)
    with TestClient(app) as open_client:
        assert open_client.get("/v1/campaigns").json() == {"data": [], "count": 0}


def test_validation_errors_name_the_field(client):
    bad = client.post("/v1/campaigns", json={**CONFIG, "per_layer": 0})
    assert bad.status_code == 422
    body = bad.json()
    fields = {e["field"]: e["problem"] for e in body["errors"]}
    assert "body.per_layer" in fields and "greater than or equal to 1" in fields["body.per_layer"]
    neurons = client.post("/v1/campaigns", json={**CONFIG, "neurons": ["3-5"]})
    assert neurons.status_code == 422 and "LAYER:INDEX" in neurons.json()["detail"]
    missing = client.post("/v1/campaigns", json={"neurons": ["3:5"]})
    assert missing.json()["errors"] == [{"field": "body.corpus", "problem": "Field required"}]
    extra = client.post("/v1/campaigns", json={**CONFIG, "nonsense": 1})
    assert extra.json()["errors"][0]["field"] == "body.nonsense"
    assert client.get("/v1/campaigns?limit=0").json()["errors"][0]["field"] == "query.limit"
    assert client.get("/v1/campaigns?status=bogus").status_code == 422



def test_fields_of_the_wrong_type_are_named_and_the_default_name_built_from_checked_fields(client):
    # the default name was once built before validation: neurons 5 or layers {} raised a TypeError (500)
    for change, field in (({"neurons": 5}, "body.neurons"), ({"neurons": {"a": 1}}, "body.neurons"),
                          ({"neurons": None, "layers": 7}, "body.layers"),
                          ({"explainer_strategy": ["x"]}, "body.explainer_strategy")):
        config = {key: value for key, value in CONFIG.items() if key != "name"} | change
        refused = client.post("/v1/campaigns", json=config)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, (change, refused.text)
    unnamed = client.post("/v1/campaigns", json={"corpus": "/data/corpus.jsonl", "layers": [2, 3], "model": "tiny"})
    assert unnamed.status_code == 202, unnamed.text
    shown = client.get(f"/v1/campaigns/{unnamed.json()['id']}").json()
    assert shown["config"]["name"] == "tiny next-token neurons of layers 2,3 oneshot"

def test_unknown_strategies_and_scorers_are_refused_naming_the_installed_ones(client):
    strategy = client.post("/v1/campaigns", json={**CONFIG, "explainer_strategy": "nosuch"})
    assert strategy.status_code == 422
    assert ("unknown explainer strategy 'nosuch'; installed: agent, contrastive, oneshot, program, "
            "program-agent") in strategy.text
    scorer = client.post("/v1/campaigns", json={**CONFIG, "scorers": ["zero-shot", "nosuch"]})
    assert scorer.status_code == 422 and "unknown scorer 'nosuch'" in scorer.text
    repeated = client.post("/v1/campaigns", json={**CONFIG, "scorers": ["detection", "detection"]})
    assert repeated.status_code == 422 and "must not repeat" in repeated.text
    listed = {e["name"] for e in client.get("/v1/explainers").json()["data"]}
    assert {"oneshot", "contrastive", "agent"} <= listed
    assert client.get("/v1/scorers").json()["count"] >= 4


def test_size_limit(client):
    huge = client.post("/v1/campaigns", content=json.dumps({**CONFIG, "name": "x" * 30_000}),
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "20000 bytes" in huge.json()["detail"]


def test_unknown_ids_are_404(client):
    for path in ("/v1/campaigns/nope", "/v1/campaigns/nope/results", "/v1/campaigns/nope/report",
                 "/v1/jobs/nope"):
        response = client.get(path)
        assert response.status_code == 404 and "nope" in response.json()["detail"], path
    assert client.post("/v1/campaigns/nope/cancel").status_code == 404
    assert client.post("/v1/campaigns/nope/resume").status_code == 404


def test_submit_with_the_broker_down_stores_the_campaign(client, store):
    """Nothing listens on the broker port: the campaign is still accepted, quickly, and kept
    pending for the orchestrator to start once Redis is back."""
    accepted = client.post("/v1/campaigns", json=CONFIG)
    assert accepted.status_code == 202
    campaign_id = accepted.json()["id"]
    assert accepted.headers["Location"] == f"/v1/campaigns/{campaign_id}"
    assert accepted.json()["dispatched"] is False
    shown = client.get(f"/v1/campaigns/{campaign_id}").json()
    assert shown["config"]["corpus"] == CONFIG["corpus"] and shown["status"] == "pending"
    listed = client.get("/v1/campaigns", params={"status": "pending"}).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == campaign_id
    assert client.get("/v1/campaigns", params={"status": "completed"}).json()["count"] == 0
    assert client.post(f"/v1/campaigns/{campaign_id}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/v1/campaigns/{campaign_id}/resume").json()["status"] == "pending"
    results = client.get(f"/v1/campaigns/{campaign_id}/results").json()
    assert results["count"] == 0 and results["neurons"] == []
    report = client.get(f"/v1/campaigns/{campaign_id}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "No scored heads yet" in report.text


def test_job_submitted_with_the_broker_down_stays_pending(client):
    job = client.post("/v1/jobs/explain", json={"request": {"token": " right", "active_examples": ["a b"]}})
    assert job.status_code == 202 and job.json()["status"] == "pending"
    shown = client.get(job.headers["Location"]).json()
    assert shown["kind"] == "explain" and shown["status"] == "pending" and shown["result"] is None
    bad = client.post("/v1/jobs/scan", json={"corpus": "c", "neurons": ["x"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"].startswith("body.neurons")


def test_meta(client):
    assert "local" in [b["name"] for b in client.get("/v1/backends").json()["data"]]
    assert "neo2024" in [t["name"] for t in client.get("/v1/templates").json()["data"]]
    assert client.get("/v1/models").json()["data"][0]["name"] == "smollm2-135m"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["store"] == "ok"
    assert ready.json()["checks"]["redis"].startswith("error")


def test_openapi_file_is_current():
    """docs/openapi.json is regenerated with: lookups api --dump-openapi docs/openapi.json"""
    from api.cli.server import openapi_schema

    kept = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert kept == json.loads(json.dumps(openapi_schema())), "regenerate docs/openapi.json"
    ids = [op["operationId"] for path in kept["paths"].values() for op in path.values()]
    assert "submit_campaign" in ids and "get_campaign_report" in ids and len(ids) == len(set(ids))


def test_campaign_status_shows_progress_inside_a_running_scan(client, store):
    """A gpu worker's scan item reports documents and tokens as it goes; the status returns them
    per stage with a rate and an ETA."""
    from services.campaigns.config import CampaignConfig
    from services.campaigns.item_progress import ProgressReporter
    from services.campaigns.records import StageItem
    from services.store.models import WorkItem

    campaign_id = client.post("/v1/campaigns", json=CONFIG).json()["id"]
    with store.session() as session:
        session.add(WorkItem(campaign_id=campaign_id, stage="scan", key="train/0-8191", queue="gpu", status="running"))
    item = StageItem(campaign_id=campaign_id, config=CampaignConfig(**CONFIG), key="train/0-8191")
    reporter = ProgressReporter(store, "scan", item, "documents", 8192, every_s=0.0)
    reporter(2048, 500_000)

    scan = next(s for s in client.get(f"/v1/campaigns/{campaign_id}").json()["stages"] if s["stage"] == "scan")
    work = scan["work"]
    assert (scan["running"], work["unit"], work["done"], work["total"], work["tokens"]) == (
        1, "documents", 2048, 8192, 500_000)
    assert work["tokens_per_s"] > 0 and work["eta_s"] == pytest.approx(3 * reporter.latest.elapsed_s)


def test_a_program_job_is_refused_with_the_reason_before_it_runs(client):
    prompts = [{"text": "the cat", "active": True, "pieces": ["the", " cat"]}]
    job = {"scorer": "program", "request": {"explanation": "import os\ndef active(t, k):\n    return True",
                                            "prompts": prompts}}
    refused = client.post("/v1/jobs/classify", json=job)
    assert refused.status_code == 422 and "import of 'os'" in refused.text
    no_active = client.post("/v1/jobs/classify", json={**job, "request": {"explanation": "x = 1", "prompts": prompts}})
    assert no_active.status_code == 422 and "defines no function active" in no_active.text
    unsplit = {"explanation": "def active(t, k):\n    return True", "prompts": [{"text": "the cat"}]}
    missing = client.post("/v1/jobs/classify", json={**job, "request": unsplit})
    assert missing.status_code == 422 and "prompts[0].pieces" in missing.text
