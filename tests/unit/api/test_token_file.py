"""The first-run api token: generated once, owner-only, then reused; `lookups api --token-file`
serves with it when no tokens are configured."""

import pytest
from fastapi.testclient import TestClient

from api.token_file import announce, is_loopback, token_from_file
from lookups import InvalidInputError


def test_a_token_is_generated_once_owner_only_then_reused(tmp_path):
    path = tmp_path / "api-token"
    token, generated = token_from_file(path)
    assert generated and len(token) >= 40
    assert path.stat().st_mode & 0o777 == 0o600
    assert token_from_file(path) == (token, False)
    assert token in announce(path, token, True) and token not in announce(path, token, False)


def test_an_empty_token_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "api-token"
    path.write_text("\n")
    with pytest.raises(InvalidInputError, match="delete it to generate a new token"):
        token_from_file(path)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.1.10", False), ("example.org", False)])
def test_only_loopback_hosts_count_as_this_machine(host, loopback):
    assert is_loopback(host) is loopback


def test_the_api_serves_with_the_token_from_its_file(tmp_path, monkeypatch):
    import uvicorn

    from api.cli import app
    from api.cli._common import run_guarded

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.update(app=app))
    monkeypatch.delenv("LOOKUPS_API_TOKENS", raising=False)
    monkeypatch.setenv("LOOKUPS_ENVIRONMENT", "production")
    monkeypatch.setenv("LOOKUPS_RESULTS_URL", f"sqlite:///{tmp_path / 'results.sqlite'}")
    monkeypatch.setenv("LOOKUPS_API_ORCHESTRATE", "false")
    run_guarded(app, ["api", "--token-file", str(tmp_path / "api-token")])
    token = (tmp_path / "api-token").read_text().strip()
    with TestClient(served["app"]) as client:
        assert client.get("/v1/campaigns").status_code == 401
        assert client.get("/v1/campaigns", headers={"Authorization": f"Bearer {token}"}).status_code == 200
