"""The access policy's rules one by one (api/access.py), the settings that feed them, and the
submission rate limiter, in-process and shared through a real redis-server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.access import (
    Policy,
    Principal,
    check_backend,
    check_campaign_size,
    check_corpus,
    check_model,
    check_template,
    check_url,
    inside_roots,
    principal_for,
    request_problems,
    token_table,
    visible,
)
from api.ratelimit import SubmissionLimiter
from services.llm.registry import named_targets
from services.settings import Settings

ALLOWED = ["http://llm.internal:8000/v1", "https://proxy.example.com/"]


@pytest.fixture
def roots(tmp_path):
    """A root with a symlink out of it, a folder outside, and a symlink from outside into it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (outside / "way-in").symlink_to(root / "sub")
    return root, outside


def test_tokens_name_principals():
    settings = Settings(api_tokens=["t1", "t2"], api_principals={"alice": "ta", "root": "tr"}, api_admins=["root"])
    table = token_table(settings)
    assert principal_for("t2", table) == Principal("token-2", admin=True)  # LOOKUPS_API_TOKENS: admins
    assert principal_for("ta", table) == Principal("alice", admin=False)
    assert principal_for("tr", table) == Principal("root", admin=True)
    assert principal_for("nope", table) is None and principal_for("", table) is None


def test_visibility():
    alice, bob, admin = Principal("alice"), Principal("bob"), Principal("root", admin=True)
    assert visible("alice", alice) and not visible("alice", bob) and visible("alice", admin)
    assert not visible(None, alice) and visible(None, admin)  # stored before owners: admins only
    assert not visible(None, Principal(None))


def test_inside_roots_follows_symlinks(roots):
    root, outside = roots
    assert inside_roots(str(root / "sub" / "c.jsonl"), [root])
    assert inside_roots(str(root / "not-yet-there.jsonl"), [root])
    assert not inside_roots(str(root / "escape" / "c.jsonl"), [root])  # inside by name, outside in fact
    assert inside_roots(str(outside / "way-in" / "c.jsonl"), [root])  # outside by name, inside in fact
    assert not inside_roots(f"{root}/../outside/c.jsonl", [root])
    assert not inside_roots(f"{root}-sibling/c.jsonl", [root])
    assert not inside_roots("root/sub/c.jsonl", [root])  # relative: the worker's cwd may differ
    assert not inside_roots(f"{root}/a\0b", [root])
    assert not inside_roots(str(root / "sub"), [])


def test_corpus_rule(roots):
    root, outside = roots
    assert check_corpus("hf:Skylion007/openwebtext", []) is None
    assert check_corpus("hf:stas/openwebtext-10k:train[:100]", []) is None
    assert check_corpus(str(root / "sub" / "c.jsonl"), [root]) is None
    assert check_corpus(f"hf:{root}/sub", [root]) is None  # a dataset folder under a root
    assert "is not set" in check_corpus(str(root / "sub" / "c.jsonl"), [])
    assert "not under LOOKUPS_CORPUS_ROOTS" in check_corpus(str(outside / "c.jsonl"), [root])
    assert "not under" in check_corpus(str(root / "escape" / "c.jsonl"), [root])
    assert "not under" in check_corpus(f"hf:{outside}", [root])
    assert "absolute path" in check_corpus("corpora/c.jsonl", [root])
    assert "absolute path" in check_corpus("owner/name", [root])  # bare hub names: say hf:
    for bad in ("hf:../x", "hf:a/../../b", "hf:~/x", "hf:a/b/c", "hf:"):
        assert "not a Hugging Face dataset id" in check_corpus(bad, [root]), bad


def test_model_rule(roots):
    root, outside = roots
    packaged = {"smollm2-135m"}
    for fine in ("smollm2-135m", "gpt2", "HuggingFaceTB/SmolLM2-135M"):
        assert check_model(fine, [], packaged) is None, fine
    assert check_model(str(root / "sub"), [root], packaged) is None
    assert "is not set" in check_model(str(root / "sub"), [], packaged)
    assert "not under LOOKUPS_MODEL_ROOTS" in check_model(str(outside), [root], packaged)
    assert "not under" in check_model(str(root / "escape"), [root], packaged)
    for bad in ("./ckpt", "~/ckpt", "a/../b", "a/b/c", "tests/unit"):  # tests/unit: a folder here
        assert "absolute checkpoint folder" in check_model(bad, [root], packaged), bad


def test_backend_rule(roots):
    root, outside = roots
    fine_backends = (
        "local", "local:smollm2-f16", "local:qwen2.5-coder-1.5b", "openai:gpt-4o", "anthropic:claude-haiku-4-5", "echo",
    )
    local = named_targets("local")
    for fine in fine_backends:
        assert check_backend(fine, [], [], local) is None, fine
    packaged = "local:NAME with a packaged model (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-f16)"
    for relative in ("local:secrets.env", "local:models", "local:m.bin", "local:./m"):  # the worker's folder
        assert packaged in check_backend(relative, [root], [], local), relative
    assert check_backend(f"local:{root}/sub/m.gguf", [root], []) is None
    assert "is not set" in check_backend(f"local:{root}/sub/m.gguf", [], [])
    assert "not under LOOKUPS_MODEL_ROOTS" in check_backend(f"local:{outside}/m.gguf", [root], [])
    assert "not under" in check_backend(f"local:{root}/escape/m.gguf", [root], [])
    assert "/path.gguf under LOOKUPS_MODEL_ROOTS" in check_backend("local:m.gguf", [root], [])
    assert "/path.gguf under LOOKUPS_MODEL_ROOTS" in check_backend("local:~/m.gguf", [root], [])
    assert check_backend("openai-compatible:http://llm.internal:8000/v1:qwen", [], ALLOWED) is None
    assert "is not set" in check_backend("openai-compatible:http://llm.internal:8000/v1:qwen", [], [])
    assert "not under" in check_backend("openai-compatible:http://evil:8000/v1:qwen", [], ALLOWED)
    assert "not under" in check_backend("openai-compatible:http://llm.internal:8000/v10:qwen", [], ALLOWED)
    assert check_backend("openai-compatible:garbage", [], ALLOWED) is not None
    assert "not under" in check_backend("plugin:http://evil/x", [], ALLOWED)  # any URL in any spec


def test_url_rule():
    for fine in ("http://llm.internal:8000/v1", "http://LLM.internal:8000/v1/", "http://llm.internal:8000/v1/chat",
                 "https://proxy.example.com/anything", "https://proxy.example.com:443/x"):
        assert check_url(fine, ALLOWED) is None, fine
    for bad in ("http://llm.internal:8001/v1", "https://llm.internal:8000/v1", "http://llm.internal:8000/v10",
                "http://llm.internal:8000/", "http://llm.internal.evil.com:8000/v1",
                "http://llm.internal:8000@evil.com:8000/v1", "http://evil.com#@llm.internal:8000/v1",
                "http://llm.internal:8000/v1/../admin", "http://llm.internal:8000/v1/%2e%2e/admin",
                "http://llm.internal:8000/v1?x=1", "http://llm.internal:8000\\@evil/v1", "ftp://llm.internal/v1",
                "http://proxy.example.com/x", "http://llm.internal:99999/v1", "not a url"):
        assert check_url(bad, ALLOWED) is not None, bad
    assert "is not set" in check_url("http://llm.internal:8000/v1", [])


def test_template_rule():
    assert check_template("neo2024", {"neo2024"}) is None
    assert "CLI-only" in check_template("/etc/passwd", {"neo2024"})


def test_campaign_size_rule():
    size = dict(neurons=None, layers=None, per_layer=20, max_train_docs=10, max_test_docs=5)
    assert check_campaign_size(**size, cap=None) == []
    assert check_campaign_size(**size, cap=900) == []  # 3 default layers x 20 x 15 documents
    over = check_campaign_size(**size, cap=899)
    assert over[0][0] == "" and "60 neurons x 15 documents = 900" in over[0][1]
    assert check_campaign_size(**{**size, "layers": [1, 2]}, cap=600) == []
    assert check_campaign_size(**{**size, "neurons": ["1:2"] * 5, "per_layer": 10_000}, cap=75) == []
    missing = check_campaign_size(**{**size, "max_train_docs": None, "max_test_docs": None}, cap=10**9)
    assert [field for field, _ in missing] == ["max_train_docs", "max_test_docs"]
    assert "LOOKUPS_API_MAX_CAMPAIGN_SIZE" in missing[0][1]


def test_request_problems_name_each_field(roots):
    root, outside = roots
    rules = Policy(corpus_roots=[root], model_roots=[root], allowed_urls=ALLOWED, packaged_models={"smollm2-135m"},
                   templates={"neo2024"})
    fine = {"corpus": "hf:a/b", "model": "smollm2-135m", "explainer": "local", "classifier": "openai:gpt-4o",
            "explainer_template": "neo2024", "options": {"base_url": "http://llm.internal:8000/v1"}, "top_k": 3}
    assert request_problems(fine, rules) == []
    bad = {"corpus": str(outside), "model": str(outside), "backend": f"local:{outside}/m.gguf",
           "classifier_template": str(outside / "t.toml"), "options": {"base_url": "http://evil/v1"}}
    assert [field for field, _ in request_problems(bad, rules)] == [
        "corpus", "model", "backend", "classifier_template", "options.base_url"]


def test_settings_refuse_what_cannot_be_meant():
    base = dict(environment="production", api_tokens=["t1"])
    Settings(**base, api_principals={"alice": "ta"}, api_admins=["alice"], corpus_roots=["/srv"],
             allowed_backend_urls=ALLOWED).check_api()
    Settings(environment="production", api_principals={"alice": "ta"}).check_api()  # principals alone will do
    for bad, message in (
        (dict(api_principals={"alice": "t1"}), "given twice"),
        (dict(api_principals={"alice": " "}), "empty"),
        (dict(api_admins=["bob"]), "not in LOOKUPS_API_PRINCIPALS"),
        (dict(api_principals={"token-2": "tx"}), "bad principal name"),
        (dict(api_principals={"a b": "tx"}), "bad principal name"),
        (dict(corpus_roots=["srv"]), "LOOKUPS_CORPUS_ROOTS"),
        (dict(model_roots=["srv"]), "LOOKUPS_MODEL_ROOTS"),
        (dict(allowed_backend_urls=["llm.internal:8000"]), "LOOKUPS_ALLOWED_BACKEND_URLS"),
    ):
        with pytest.raises(ValueError, match=message):
            Settings(**{**base, **bad}).check_api()


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOOKUPS_API_PRINCIPALS", '{"alice": "tok-a", "bob": "tok-b"}')
    monkeypatch.setenv("LOOKUPS_API_ADMINS", '["alice"]')
    monkeypatch.setenv("LOOKUPS_CORPUS_ROOTS", '["/srv/corpora"]')
    monkeypatch.setenv("LOOKUPS_API_SUBMISSIONS_PER_MINUTE", "5")
    monkeypatch.setenv("LOOKUPS_API_MAX_CAMPAIGN_SIZE", "1000000")
    settings = Settings()
    assert settings.api_principals == {"alice": "tok-a", "bob": "tok-b"} and settings.api_admins == ["alice"]
    assert settings.corpus_roots == [Path("/srv/corpora")] and settings.model_roots == []
    assert settings.api_submissions_per_minute == 5 and settings.api_max_campaign_size == 1_000_000
    assert Settings.model_fields["api_submissions_per_minute"].default == 30
    assert Settings.model_fields["api_max_campaign_size"].default is None


def test_local_limiter_slides_per_key():
    limiter = SubmissionLimiter(2, None, window_s=0.5)
    assert limiter.admit("alice") == 0 and limiter.admit("alice") == 0
    wait = limiter.admit("alice")
    assert 0 < wait <= 0.5
    assert limiter.admit("bob") == 0
    time.sleep(wait + 0.01)
    assert limiter.admit("alice") == 0
    assert all(SubmissionLimiter(0, None).admit("x") == 0 for _ in range(100))  # 0: no limit


def test_limiter_is_shared_through_redis(tmp_path):
    """Two API processes' limiters count against one limit in Redis; with Redis unreachable a
    limiter counts on its own instead of failing submissions."""
    from services.processes import RedisServer, StartError, free_port

    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except StartError as error:
        pytest.skip(str(error))
    try:
        first, second = SubmissionLimiter(3, server.url), SubmissionLimiter(3, server.url)
        assert [first.admit("alice"), second.admit("alice"), first.admit("alice")] == [0, 0, 0]
        wait = second.admit("alice")
        assert 59 < wait <= 60
        assert first.admit("bob") == 0
        assert first._local == {} and second._local == {}  # nothing counted in-process
    finally:
        server.stop(timeout=30.0)  # a float: the unit tier type-checks services at run time
    down = SubmissionLimiter(1, f"redis://127.0.0.1:{free_port()}/0")
    assert down.admit("alice") == 0 and down.admit("alice") > 0
