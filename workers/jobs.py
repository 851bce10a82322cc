"""Single jobs on the worker queues: ``lookups.gpu.job`` (scan, attribute) and
``lookups.llm.job`` (explain, classify); and enqueueing them, now or once the broker is back."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from services.jobs import QUEUE, run_job
from services.llm.errors import BackendUnavailableError
from services.settings import get_settings
from services.store import Store
from services.store.models import JobRow, utcnow
from workers.app import app
from workers.tasks import worker_state

log = logging.getLogger(__name__)


@app.task(name="lookups.gpu.job")
def run_gpu_job(job_id: str) -> str:
    store, runtime = worker_state()
    return run_job(store, runtime, job_id)


@app.task(name="lookups.llm.job", autoretry_for=(BackendUnavailableError,), retry_backoff=True,
          retry_backoff_max=300, retry_jitter=True, max_retries=5)
def run_llm_job(job_id: str) -> str:
    store, runtime = worker_state()
    return run_job(store, runtime, job_id)


def enqueue_job(store: Store, job_id: str) -> bool:
    """Mark the job queued and send it; False (job left pending) when the broker is away."""
    with store.session() as session:
        job = session.get(JobRow, job_id)
        queue = QUEUE[job.kind]
    try:
        app.send_task(f"lookups.{queue}.job", args=[job_id])
    except Exception:
        log.exception("could not enqueue job %s now; it stays pending", job_id)
        return False
    with store.session() as session:
        session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "pending")
                        .values(status="queued"))
    return True


def requeue_jobs(store: Store) -> None:
    """Send pending jobs, and jobs queued or running with no news for too long (lost messages)."""
    cutoff = utcnow() - timedelta(seconds=get_settings().stale_after_s)
    with store.session() as session:
        session.execute(update(JobRow).where(JobRow.status.in_(("queued", "running")),
                                             JobRow.updated_at <= cutoff).values(status="pending"))
        pending = list(session.scalars(select(JobRow.id).where(JobRow.status == "pending")
                                       .order_by(JobRow.created_at)))
    for job_id in pending:
        if not enqueue_job(store, job_id):
            return
