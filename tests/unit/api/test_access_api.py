"""Access control through the real app and a real SQLite store: principals see only their own
campaigns and jobs (404 otherwise; admins see all), paths and URLs outside the policy are 422
naming the field, for campaigns and every job kind, submissions are rate limited (429) and
campaigns capped in size (422)."""

from __future__ import annotations

from tests.unit.api.conftest import auth, fields

CONFIG = {"corpus": "hf:owner/corpus", "neurons": ["3:5"], "model": "tiny", "name": "t"}
EXPLAIN = {"request": {"token": " right", "active_examples": ["a b"]}}
ATTRIBUTION = {"neuron": {"layer": 3, "index": 5}, "definition": "paper", "active_stds": 2.0,
               "worth_range": [0.25, 0.75], "prompts": [], "worth_explaining": []}


def job_bodies(corpus: str, model: str, backend: str) -> dict[str, dict]:
    """A valid request of every job kind, naming this corpus, model or backend where it has one."""
    return {
        "neurons": {"model": model},
        "scan": {"corpus": corpus, "model": model, "neurons": ["3:5"]},
        "truncate": {"corpus": corpus, "model": model, "contexts": [{"neuron": {"layer": 3, "index": 5}, "hits": []}]},
        "attribute": {"model": model, "neuron": "3:5", "prompts": ["a b"]},
        "ablate": {"model": model, "attribution": ATTRIBUTION, "heads": ["1.2"]},
        "explain": {"backend": backend, **EXPLAIN},
        "classify": {"backend": backend, "request": {"explanation": "e", "prompts": [{"text": "a"}]}},
    }


def test_a_principal_never_reads_cancels_reports_or_lists_anothers(client_for, store):
    from services.campaigns.config import CampaignConfig
    from services.campaigns.lifecycle import create_campaign
    from services.store.models import Campaign, JobRow

    client = client_for()
    alices = client.post("/v1/campaigns", json=CONFIG, headers=auth("alice")).json()["id"]
    alices_job = client.post("/v1/jobs/explain", json=EXPLAIN, headers=auth("alice")).json()["id"]
    bobs = client.post("/v1/campaigns", json=CONFIG, headers=auth("bob")).json()["id"]
    nobodys = create_campaign(store, CampaignConfig.model_validate(CONFIG))  # stored before owners, or by the CLI
    with store.session() as session:
        assert session.get(Campaign, alices).owner == "alice" and session.get(Campaign, nobodys).owner is None
        assert session.get(JobRow, alices_job).owner == "alice"

    for campaign in (alices, nobodys):
        for suffix in ("", "/results", "/report"):
            seen = client.get(f"/v1/campaigns/{campaign}{suffix}", headers=auth("bob"))
            assert seen.status_code == 404, suffix
            assert seen.json()["detail"] == f"no campaign with id {campaign!r}"  # as for an id that does not exist
        for action in ("cancel", "resume"):
            assert client.post(f"/v1/campaigns/{campaign}/{action}", headers=auth("bob")).status_code == 404
    assert client.get(f"/v1/campaigns/{alices}", headers=auth("alice")).json()["status"] == "pending"  # not cancelled
    baseline = client.get(f"/v1/campaigns/{bobs}/report", params={"baseline": alices}, headers=auth("bob"))
    assert baseline.status_code == 404
    assert client.get(f"/v1/jobs/{alices_job}", headers=auth("bob")).status_code == 404
    assert client.get(f"/v1/campaigns/{nobodys}", headers=auth("alice")).status_code == 404

    def listed(name: str) -> set[str]:
        body = client.get("/v1/campaigns", headers=auth(name)).json()
        assert body["count"] == len(body["data"])
        return {c["id"] for c in body["data"]}

    assert listed("alice") == {alices} and listed("bob") == {bobs}
    assert client.get("/v1/campaigns", params={"status": "pending"}, headers=auth("bob")).json()["count"] == 1

    for admin in ("root", "legacy"):  # an admin principal, and a LOOKUPS_API_TOKENS token
        assert listed(admin) == {alices, bobs, nobodys}
        for campaign in (alices, bobs, nobodys):
            assert client.get(f"/v1/campaigns/{campaign}/results", headers=auth(admin)).status_code == 200
        assert client.get(f"/v1/jobs/{alices_job}", headers=auth(admin)).json()["kind"] == "explain"
    assert client.post(f"/v1/campaigns/{alices}/cancel", headers=auth("root")).json()["status"] == "cancelled"
    assert client.post(f"/v1/campaigns/{alices}/resume", headers=auth("alice")).json()["status"] == "pending"
    report = client.get(f"/v1/campaigns/{bobs}/report", params={"baseline": alices}, headers=auth("root"))
    assert report.status_code == 200
    assert client.get("/v1/campaigns", headers={"Authorization": "Bearer tok-alice"}).status_code == 403


def test_local_paths_and_backend_urls_are_refused_by_default(client_for):
    client = client_for(corpus_roots=[], model_roots=[], allowed_backend_urls=[])
    for change, field in (({"corpus": "/data/corpus.jsonl"}, "body.corpus"),
                          ({"model": "/models/ckpt"}, "body.model"),
                          ({"explainer": "local:/models/m.gguf"}, "body.explainer"),
                          ({"classifier": "openai-compatible:http://127.0.0.1:8080/v1:m"}, "body.classifier")):
        refused = fields(client.post("/v1/campaigns", json={**CONFIG, **change}, headers=auth("alice")))
        assert list(refused) == [field] and "is not set" in refused[field]
    accepted = client.post("/v1/campaigns", headers=auth("alice"), json={
        **CONFIG, "corpus": "hf:stas/openwebtext-10k:train", "model": "smollm2-135m", "explainer": "local",
        "classifier": "openai:gpt-4o"})
    assert accepted.status_code == 202, accepted.text


def test_each_path_and_url_rule_is_422_naming_the_field(client_for, tmp_path):
    corpora, models, outside = tmp_path / "corpora", tmp_path / "models", tmp_path / "outside"
    for folder in (corpora, models, outside):
        folder.mkdir()
    (corpora / "escape").symlink_to(outside)
    client = client_for(corpus_roots=[corpora], model_roots=[models], allowed_backend_urls=["http://llm.internal:8000/v1"])

    inside = {"corpus": str(corpora / "c.jsonl"), "model": str(models / "ckpt"),
              "explainer": f"local:{models}/m.gguf", "classifier": "openai-compatible:http://llm.internal:8000/v1:m"}
    assert client.post("/v1/campaigns", json={**CONFIG, **inside}, headers=auth("alice")).status_code == 202
    cases = [
        ({"corpus": str(outside / "c.jsonl")}, "body.corpus", "not under LOOKUPS_CORPUS_ROOTS"),
        ({"corpus": str(corpora / "escape" / "c.jsonl")}, "body.corpus", "not under LOOKUPS_CORPUS_ROOTS"),
        ({"corpus": "corpora/c.jsonl"}, "body.corpus", "absolute path"),
        ({"corpus": f"hf:{outside}"}, "body.corpus", "not under LOOKUPS_CORPUS_ROOTS"),
        ({"corpus": "hf:../x"}, "body.corpus", "not a Hugging Face dataset id"),
        ({"model": str(outside)}, "body.model", "not under LOOKUPS_MODEL_ROOTS"),
        ({"model": "../ckpt"}, "body.model", "absolute checkpoint folder"),
        ({"explainer": f"local:{outside}/m.gguf"}, "body.explainer", "not under LOOKUPS_MODEL_ROOTS"),
        ({"explainer": "openai-compatible:http://llm.internal:8000/v2:m"}, "body.explainer",
         "not under LOOKUPS_ALLOWED_BACKEND_URLS"),
        ({"classifier": "openai-compatible:http://evil.example:8000/v1:m"}, "body.classifier",
         "not under LOOKUPS_ALLOWED_BACKEND_URLS"),
        ({"explainer_template": str(outside / "t.toml")}, "body.explainer_template", "registered name"),
        ({"classifier_template": "/etc/passwd"}, "body.classifier_template", "registered name"),
    ]
    for change, field, problem in cases:
        refused = fields(client.post("/v1/campaigns", json={**CONFIG, **change}, headers=auth("alice")))
        assert list(refused) == [field] and problem in refused[field], change
    several = fields(client.post("/v1/campaigns", headers=auth("alice"), json={
        **CONFIG, "corpus": str(outside), "model": str(outside), "classifier": f"local:{outside}/m.gguf"}))
    assert set(several) == {"body.corpus", "body.model", "body.classifier"}

    from services.work import WORK_KINDS

    allowed = job_bodies(inside["corpus"], inside["model"], inside["classifier"])
    refused_bodies = job_bodies(str(outside / "c.jsonl"), str(outside), f"local:{outside}/m.gguf")
    assert set(allowed) == set(WORK_KINDS)  # a new kind gets a case here
    for kind, body in allowed.items():
        accepted = client.post(f"/v1/jobs/{kind}", json=body, headers=auth("alice"))
        assert accepted.status_code == 202, (kind, accepted.text)
        named = {f"body.{field}" for field in ("corpus", "model", "backend") if field in body}
        assert named and set(fields(client.post(f"/v1/jobs/{kind}", json=refused_bodies[kind],
                                                headers=auth("alice")))) == named, kind
    template = fields(client.post("/v1/jobs/explain", json={**EXPLAIN, "template": "/etc/passwd"}, headers=auth("bob")))
    assert list(template) == ["body.template"]


def test_submissions_are_rate_limited_per_principal(client_for):
    client = client_for(api_submissions_per_minute=2)
    assert client.post("/v1/campaigns", json={**CONFIG, "corpus": "x"}, headers=auth("alice")).status_code == 422
    assert client.post("/v1/campaigns", json=CONFIG, headers=auth("alice")).status_code == 202
    assert client.post("/v1/jobs/explain", json=EXPLAIN, headers=auth("alice")).status_code == 202
    for refused in (client.post("/v1/campaigns", json=CONFIG, headers=auth("alice")),
                    client.post("/v1/jobs/neurons", json={}, headers=auth("alice"))):
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "LOOKUPS_API_SUBMISSIONS_PER_MINUTE" in refused.json()["detail"]
    assert client.post("/v1/campaigns", json=CONFIG, headers=auth("bob")).status_code == 202
    assert client.get("/v1/campaigns", headers=auth("alice")).json()["count"] == 1  # reading is not limited


def test_campaign_size_is_capped(client_for):
    client = client_for(api_max_campaign_size=1000)
    missing = fields(client.post("/v1/campaigns", json=CONFIG, headers=auth("alice")))
    assert set(missing) == {"body.max_train_docs", "body.max_test_docs"}
    assert "LOOKUPS_API_MAX_CAMPAIGN_SIZE" in missing["body.max_train_docs"]

    def submit(**change):
        return client.post("/v1/campaigns", json={**CONFIG, "max_train_docs": 10, "max_test_docs": 10, **change},
                           headers=auth("alice"))

    assert submit(max_train_docs=500, max_test_docs=500).status_code == 202  # 1 neuron x 1000 documents
    over = fields(submit(max_train_docs=501, max_test_docs=500))
    assert list(over) == ["body"] and "1 neurons x 1001 documents = 1001" in over["body"]
    assert submit(neurons=None, layers=[1, 2], per_layer=10, max_train_docs=30, max_test_docs=20).status_code == 202
    assert fields(submit(neurons=None, layers=[1, 2], per_layer=10, max_train_docs=31, max_test_docs=20))
    assert "60 neurons x 20 documents" in fields(submit(neurons=None))["body"]  # 3 layers x 20 by default
