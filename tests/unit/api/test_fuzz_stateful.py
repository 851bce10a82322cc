"""Schemathesis in stateful mode over the campaign and job links (issue 13), in-process (ASGI)
against a real SQLite store: scenarios submit campaigns and jobs, then follow the OpenAPI links
of the 202 responses (docs/openapi.json: the accepted ``id`` feeds GET /v1/campaigns/{id}, its
results, report, cancel and resume, and GET /v1/jobs/{id}) in random orders and with random
inputs. Every response is checked: no 5xx, a documented status code and content type, a body
that matches the response schema, and a resource the API just accepted is there to be read.

The fields the access policy governs (corpus, model, backends, templates) are set to values the
policy accepts, so that submissions get through to the links; their refusals are fuzzed by
test_fuzz.py. No broker listens, so nothing runs: campaigns stay pending, jobs stay pending.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import free_port
from tests.unit.api.conftest import TOKEN

DIRECTORY = Path(tempfile.mkdtemp(prefix="lookups-fuzz-stateful-"))
CORPUS = DIRECTORY / "corpora" / "owt.jsonl.gz"  # under the corpus root; never read (nothing runs)
ALLOWED = {"corpus": str(CORPUS), "model": "smollm2-135m", "backend": "local", "explainer": "local",
           "classifier": "local", "template": "neo2024", "explainer_template": "neo2024",
           "classifier_template": "neo2024"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          ensure_resource_availability]


def _app():
    from api.app import create_app
    from services.settings import Settings

    return create_app(Settings(environment="production", api_tokens=[TOKEN], api_orchestrate=False,
                               results_url=f"sqlite:///{DIRECTORY / 'fuzz.sqlite'}",
                               broker_url=f"redis://127.0.0.1:{free_port()}/0",
                               corpus_roots=[str(CORPUS.parent)], api_submissions_per_minute=0))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.hook
def map_body(context, body):
    """Submissions name a corpus, model, backends and templates the policy allows."""
    if context.operation is None or context.operation.method.upper() != "POST" or not isinstance(body, dict):
        return body
    return {**body, **{field: value for field, value in ALLOWED.items() if field in body}}


def _no_phantom_resources() -> None:
    """Schemathesis infers resources from field names, and takes ``test_from_id`` (the document
    id where the test split starts) for a reference to a "TestFrom" that nothing produces; an
    operation needing one is not a scenario's first step, so no campaign would be submitted
    (nor scan or truncate jobs). Drop that inferred input; the declared links stay."""
    for node in schema.analysis.dependency_graph.operations.values():
        node.inputs = [slot for slot in node.inputs if slot.parameter_name != "test_from_id"]


_no_phantom_resources()

ANSWERED: Counter[tuple[str, int]] = Counter()  # (operationId, status) of every call made


class Links(schema.as_state_machine()):  # type: ignore[misc]
    def before_call(self, case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}

    def after_call(self, response, case):
        super().after_call(response, case)
        ANSWERED[case.operation.definition.raw["operationId"], response.status_code] += 1

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None, recorder=self.recorder)


def test_the_declared_links_lead_from_each_submission_to_what_reads_it():
    from services.work import WORK_KINDS

    links = {(operation["operationId"], link["operationId"])
             for methods in schema.raw_schema["paths"].values() for operation in methods.values()
             for response in operation.get("responses", {}).values() for link in response.get("links", {}).values()}
    campaign = {"get_campaign", "get_campaign_results", "get_campaign_report", "cancel_campaign", "resume_campaign"}
    assert links == {("submit_campaign", op) for op in campaign} | {(f"submit_{kind}_job", "get_job")
                                                                     for kind in WORK_KINDS}


@pytest.mark.slow  # schemathesis scenarios along the links: about 20 s
@pytest.mark.timeout(120)
def test_scenarios_along_the_links_get_no_server_errors_and_conform_to_the_schema():
    ANSWERED.clear()
    Links.run(settings=settings(max_examples=40, stateful_step_count=8, deadline=None,
                                suppress_health_check=list(HealthCheck)))
    # The scenarios went past the submissions: links were followed to campaigns and jobs that exist.
    for operation in ("submit_campaign", "get_campaign", "get_campaign_results", "get_job"):
        assert ANSWERED[operation, 200 if operation.startswith("get") else 202] > 0, sorted(ANSWERED.items())
