"""The API in-process over a real SQLite store, with a broker address where nothing listens."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

TOKEN = "test-token-123"


@pytest.fixture
def settings(tmp_path):
    from services.settings import Settings
    from tests.integration.conftest import free_port

    return Settings(environment="production", api_tokens=[TOKEN], api_orchestrate=False,
                    results_url=f"sqlite:///{tmp_path / 'results.sqlite'}",
                    broker_url=f"redis://127.0.0.1:{free_port()}/0", api_max_request_bytes=20_000,
                    corpus_roots=["/data"])


@pytest.fixture
def store(settings):
    from services.store import Store

    store = Store(settings.results_url)
    yield store
    store.dispose()


@pytest.fixture
def client(settings, store, monkeypatch):
    from api.app import create_app

    # workers.app reads the broker address from the environment when first imported
    monkeypatch.setenv("LOOKUPS_BROKER_URL", settings.broker_url)
    with TestClient(create_app(settings, store), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


PRINCIPALS = {"alice": "tok-alice-1", "bob": "tok-bob-22", "root": "tok-root-333"}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN if name == 'legacy' else PRINCIPALS[name]}"}


@pytest.fixture
def client_for(settings, store, monkeypatch):
    """A client of an app with principals alice, bob and root (an admin) beside the legacy
    LOOKUPS_API_TOKENS token, and whatever other settings a test gives."""
    from api.app import create_app

    monkeypatch.setenv("LOOKUPS_BROKER_URL", settings.broker_url)
    clients = []

    def make(**update) -> TestClient:
        changed = settings.model_copy(update={"api_principals": PRINCIPALS, "api_admins": ["root"], **update})
        client = TestClient(create_app(changed, store))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def fields(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["problem"] for e in response.json()["errors"]}
