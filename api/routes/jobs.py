"""Single jobs: one piece of work of any kind in ``services.work`` (``POST /v1/jobs/{kind}``),
run by a worker. The routes are made from the table of work kinds, one per kind."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel

from api.access import visible
from api.broker import broker_reachable
from api.deps import (
    RATE_LIMITED,
    LimiterDep,
    PrincipalDep,
    SettingsDep,
    StoreDep,
    access_problems,
    count_submission,
    refuse,
    require_token,
)
from api.schemas import ErrorPublic, UTCDateTime
from services.jobs import create_job
from services.store.models import JobRow
from services.store.statuses import JobStatus
from services.work import WORK_KINDS, WorkKind
from workers.jobs import enqueue_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require_token)])
# OpenAPI link: the accepted job's id is what GET /v1/jobs/{job_id} takes.
ACCEPTED = {202: {"links": {"GetJob": {"operationId": "get_job", "parameters": {"job_id": "$response.body#/id"}}}}}


class JobAccepted(BaseModel):
    id: str
    status: JobStatus


class JobPublic(BaseModel):
    id: str
    kind: str
    status: JobStatus
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None
    created_at: UTCDateTime
    updated_at: UTCDateTime


def _submit_route(kind: WorkKind):
    def submit(body, store: StoreDep, settings: SettingsDep, limiter: LimiterDep, principal: PrincipalDep,
               response: Response) -> JobAccepted:

        refuse(access_problems(body.model_dump(), settings))
        count_submission(limiter, principal)
        job_id = create_job(store, kind.name, body, owner=principal.name)
        queued = broker_reachable(settings.broker_url) and enqueue_job(store, job_id)
        response.headers["Location"] = f"/v1/jobs/{job_id}"
        return JobAccepted(id=job_id, status=JobStatus.QUEUED if queued else JobStatus.PENDING)

    submit.__annotations__["body"] = kind.request
    return submit


for _kind in WORK_KINDS.values():
    router.add_api_route(f"/{_kind.name}", _submit_route(_kind), methods=["POST"], status_code=202,
                         operation_id=f"submit_{_kind.name}_job", summary=_kind.summary,
                         responses={**ACCEPTED, **RATE_LIMITED},
                         description=f"{_kind.summary} Runs on the {_kind.queue} queue; the job's result "
                         f"is a {_kind.result.__name__}.")


@router.get("/{job_id}", operation_id="get_job",
            responses={404: {"model": ErrorPublic, "description": "No job with this id that this principal may see."}})
def get_job(job_id: str, store: StoreDep, principal: PrincipalDep) -> JobPublic:
    """A job's status; once done, its result (the kind's result model as JSON)."""
    with store.session() as session:
        job = session.get(JobRow, job_id)
        if job is None or not visible(job.owner, principal):
            raise HTTPException(404, f"no job with id {job_id!r}")
        return JobPublic(id=job.id, kind=job.kind, status=job.status, request=job.request, result=job.result,
                         error=job.error, created_at=job.created_at, updated_at=job.updated_at)
