"""Single jobs on the worker queues: ``lookups.gpu.job`` and ``lookups.llm.job`` (by the work
kind's queue); and sending them, now or once the broker is back."""

from __future__ import annotations

import logging
from datetime import timedelta

from services.jobs import job_queue, jobs_to_send, mark_job_queued, run_job
from services.settings import get_settings
from services.store import Store
from workers.app import app
from workers.tasks import last_try, retry_if_transient, worker_state

log = logging.getLogger(__name__)


def _run(task, job_id: str) -> str:
    """A transient error is retried like a work item's (``workers.tasks``); the last try fails
    the job."""
    try:
        store, runtime = worker_state()
        return run_job(store, runtime, job_id, retry_transient=not last_try(task))
    except Exception as error:
        retry_if_transient(task, error)
        raise


@app.task(name="lookups.gpu.job", bind=True)
def run_gpu_job(self, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name="lookups.llm.job", bind=True)
def run_llm_job(self, job_id: str) -> str:
    return _run(self, job_id)


def enqueue_job(store: Store, job_id: str) -> bool:
    """Mark the job queued and send it; False (job left pending) when the broker is away."""
    try:
        app.send_task(f"lookups.{job_queue(store, job_id)}.job", args=[job_id])
    except Exception:
        log.exception("could not enqueue job %s now; it stays pending", job_id)
        return False
    mark_job_queued(store, job_id)
    return True


def requeue_jobs(store: Store) -> None:
    """Send pending jobs, and jobs queued or running with no news for too long (lost messages)."""
    for job_id in jobs_to_send(store, timedelta(seconds=get_settings().stale_after_s)):
        if not enqueue_job(store, job_id):
            return
