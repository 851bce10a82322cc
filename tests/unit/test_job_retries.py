"""Single REST jobs on a transient error: the worker task (run eagerly by Celery's own
``apply``, retries included) tries the job again; it fails only when the tries are used up, or
at once for any other error. Real store, real Celery task, the LLM behind the fake server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI, error  # noqa: E402

from lookups import ExplainRequest  # noqa: E402
from services.jobs import create_job  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import JobRow  # noqa: E402
from services.work import ExplainWork  # noqa: E402
from workers.jobs import run_llm_job  # noqa: E402


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        server.respond = lambda prompt: "Active on the word right."
        yield server


@pytest.fixture
def store(tmp_path, monkeypatch):
    """The worker's environment: its store, a fresh LLM cache, one try per LLM call (so a 503
    reaches the task), three tries per job, no waits between them."""
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    for name, value in {"LOOKUPS_RESULTS_URL": url, "LOOKUPS_LLM_DB_URL": f"sqlite:///{tmp_path / 'llm.sqlite'}",
                        "LOOKUPS_DEVICE": "cpu", "LOOKUPS_LLM_MAX_ATTEMPTS": "1",
                        "LOOKUPS_ITEM_MAX_ATTEMPTS": "3", "LOOKUPS_ITEM_RETRY_INITIAL_S": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("workers.tasks._state", None)  # the worker's state is made from this environment
    store = Store(url)
    yield store
    store.dispose()
    monkeypatch.setattr("workers.tasks._state", None)


def explain_job(store: Store, fake_llm: FakeOpenAI) -> str:
    return create_job(store, "explain", ExplainWork(
        backend=f"openai-compatible:{fake_llm.url}:fake-job",
        request=ExplainRequest(token=" right", active_examples=["We turned", "Keep to the"])))


def job(store: Store, job_id: str) -> JobRow:
    with store.session() as session:
        return session.get_one(JobRow, job_id)


def test_a_transient_error_is_retried_and_the_job_is_done(store, fake_llm):
    fake_llm.faults.extend([error(503, "overloaded"), error(503, "overloaded")])
    job_id = explain_job(store, fake_llm)

    assert run_llm_job.apply(args=[job_id]).get() == "done"
    row = job(store, job_id)
    assert row.status == "done" and row.error is None
    assert row.result["text"] == "Active on the word right."
    assert len(fake_llm.requests) == 3  # two 503s, then the answer


def test_the_job_fails_when_its_tries_are_used_up(store, fake_llm):
    fake_llm.faults.extend(error(503, "still overloaded") for _ in range(3))
    job_id = explain_job(store, fake_llm)

    assert run_llm_job.apply(args=[job_id]).get() == "failed"
    row = job(store, job_id)
    assert row.status == "failed" and "still overloaded" in row.error and "last try" in row.error
    assert len(fake_llm.requests) == 3 and not fake_llm.faults


def test_any_other_error_fails_the_job_at_once(store, fake_llm):
    fake_llm.faults.append(error(400, "this prompt is refused"))
    job_id = explain_job(store, fake_llm)

    assert run_llm_job.apply(args=[job_id]).get() == "failed"
    row = job(store, job_id)
    assert row.status == "failed" and "this prompt is refused" in row.error and "last try" not in row.error
    assert len(fake_llm.requests) == 1
