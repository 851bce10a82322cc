"""Single jobs outside any campaign: one piece of work of a kind in ``services.work``, stored
with its request, run by a worker, read back with its result. Every job's SQL is here; the
workers only carry job ids."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import select, update

from services.runtime import Runtime
from services.store import Store
from services.store.models import JobRow, utcnow
from services.store.statuses import JobStatus
from services.transient import describe, failure_message
from services.work import WORK_KINDS

log = logging.getLogger(__name__)


def create_job(store: Store, kind: str, request: BaseModel, owner: str | None = None) -> str:
    """Store a pending job; ``owner`` is the API principal submitting it (None: admins only)."""
    job_id = uuid.uuid4().hex
    with store.session() as session:
        session.add(JobRow(id=job_id, kind=kind, status=JobStatus.PENDING, owner=owner,
                           request=request.model_dump(mode="json")))
    return job_id


def job_queue(store: Store, job_id: str) -> str:
    with store.session() as session:
        return WORK_KINDS[session.get_one(JobRow, job_id).kind].queue


def mark_job_queued(store: Store, job_id: str) -> None:
    with store.session() as session:
        session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == JobStatus.PENDING)
                        .values(status=JobStatus.QUEUED))


def jobs_to_send(store: Store, stale_after: timedelta) -> list[str]:
    """Pending jobs, oldest first, after making jobs queued or running with no news for
    ``stale_after`` pending again (their message was lost)."""
    cutoff = utcnow() - stale_after
    with store.session() as session:
        session.execute(update(JobRow).where(JobRow.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
                                             JobRow.updated_at <= cutoff).values(status=JobStatus.PENDING))
        return list(session.scalars(select(JobRow.id).where(JobRow.status == JobStatus.PENDING)
                                    .order_by(JobRow.created_at)))


def run_job(store: Store, runtime: Runtime, job_id: str, *, retry_transient: bool = False) -> str:
    """Run a job once: a finished job is not run again (a redelivered message is harmless).

    With ``retry_transient``, a transient error (``services.transient``) puts the job back to
    queued and propagates, so the worker tries it again later; without it (the last try), or for
    any other error, the job is failed with the error's message.
    """
    with store.session() as session:
        job = session.get(JobRow, job_id)
        if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
            return "skipped"
        job.status = JobStatus.RUNNING
        kind = WORK_KINDS[job.kind]
        request = kind.request.model_validate(job.request)
    try:
        result = kind.compute(runtime, request)
    except Exception as error:
        message = failure_message(error, retry=retry_transient)
        if message is None:
            log.warning("job %s: %s; it will be tried again", job_id, describe(error))
            with store.session() as session:
                session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == JobStatus.RUNNING)
                                .values(status=JobStatus.QUEUED))
            raise
        with store.session() as session:
            job = session.get_one(JobRow, job_id)
            job.status, job.error = JobStatus.FAILED, message
        return "failed"
    with store.session() as session:
        job = session.get_one(JobRow, job_id)
        job.status, job.result, job.error = JobStatus.DONE, result.model_dump(mode="json"), None
    return "done"
