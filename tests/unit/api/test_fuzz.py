"""Schemathesis fuzzing of every operation in the OpenAPI schema, in-process (ASGI), against a
real SQLite store: whatever the input, no 5xx. (``/readyz`` is left out: with no Redis here its
503 is the right answer; tests/unit/api/test_app.py checks it.)"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.integration.conftest import free_port
from tests.unit.api.conftest import TOKEN


def _app():
    from api.app import create_app
    from services.settings import Settings

    directory = Path(tempfile.mkdtemp(prefix="lookups-fuzz-"))
    return create_app(Settings(environment="production", api_tokens=[TOKEN], api_orchestrate=False,
                               results_url=f"sqlite:///{directory / 'fuzz.sqlite'}",
                               broker_url=f"redis://127.0.0.1:{free_port()}/0"))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@pytest.mark.slow  # 50 examples for each of the API's operations: about a minute
@schema.exclude(path="/readyz").parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])
