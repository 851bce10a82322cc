"""Schemathesis fuzzing of every operation in the OpenAPI schema, in-process (ASGI), against a
real SQLite store: whatever the input, no 5xx. (``/readyz`` is left out: with no Redis here its
503 is the right answer; tests/unit/api/test_app.py checks it.)

Beside schemathesis's own valid and invalid bodies, a share of the bodies gets one of its numbers
replaced by an extreme one (issue 24: ``top_k`` 10^18, ``context_length`` 10^15 and layers -100
were accepted), so that every bound in the schema is pushed past, nested fields included.
(Non-finite numbers cannot travel: the HTTP client refuses to write them into JSON;
test_security_numbers.py sends them as raw text.)"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
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
EXTREMES = (10**18, -(10**18), 2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 0, -1, 0.5)


def _number_paths(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [found for key, item in items for found in _number_paths(item, (*path, key))]


def _replaced(value: Any, path: tuple, number: float) -> Any:
    if not path:
        return number
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], number)
    return copy


@schema.hook
def flatmap_body(context, body):
    """The body as generated, or with one of its numbers made extreme."""
    paths = _number_paths(body)
    if not paths:
        return st.just(body)
    pushed = st.tuples(st.sampled_from(paths), st.sampled_from(EXTREMES)).map(lambda c: _replaced(body, *c))
    return st.one_of(st.just(body), pushed)


@pytest.mark.slow  # 50 examples for each of the API's operations: about a minute
@schema.exclude(path="/readyz").parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])
