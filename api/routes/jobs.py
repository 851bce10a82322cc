"""Single jobs: one scan, attribution, explanation or classification, run by a worker."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel

from api.broker import broker_reachable
from api.deps import SettingsDep, StoreDep, require_token
from api.schemas import ErrorPublic
from services.jobs import AttributeJob, ClassifyJob, ExplainJob, JobKind, JobResult, ScanJob, create_job
from services.settings import Settings
from services.store import Store
from services.store.models import JobRow

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require_token)])


class JobAccepted(BaseModel):
    id: str
    status: str


class JobPublic(BaseModel):
    id: str
    kind: JobKind
    status: str
    request: dict
    result: JobResult | None
    error: str | None
    created_at: datetime
    updated_at: datetime


def _submit(store: Store, settings: Settings, kind: JobKind, request: BaseModel,
            response: Response) -> JobAccepted:
    from workers.jobs import enqueue_job

    job_id = create_job(store, kind, request)
    queued = broker_reachable(settings.broker_url) and enqueue_job(store, job_id)
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return JobAccepted(id=job_id, status="queued" if queued else "pending")


@router.post("/scan", operation_id="submit_scan_job", status_code=202)
def submit_scan(body: ScanJob, store: StoreDep, settings: SettingsDep, response: Response) -> JobAccepted:
    """Top activating documents of some neurons over a corpus split."""
    return _submit(store, settings, "scan", body, response)


@router.post("/attribute", operation_id="submit_attribute_job", status_code=202)
def submit_attribute(body: AttributeJob, store: StoreDep, settings: SettingsDep, response: Response) -> JobAccepted:
    """Head attribution of one neuron on given prompts."""
    return _submit(store, settings, "attribute", body, response)


@router.post("/explain", operation_id="submit_explain_job", status_code=202)
def submit_explain(body: ExplainJob, store: StoreDep, settings: SettingsDep, response: Response) -> JobAccepted:
    """One LLM explanation of a head from active and inactive examples."""
    return _submit(store, settings, "explain", body, response)


@router.post("/classify", operation_id="submit_classify_job", status_code=202)
def submit_classify(body: ClassifyJob, store: StoreDep, settings: SettingsDep, response: Response) -> JobAccepted:
    """Zero-shot classification of prompts from an explanation."""
    return _submit(store, settings, "classify", body, response)


@router.get("/{job_id}", operation_id="get_job",
            responses={404: {"model": ErrorPublic, "description": "No job with this id."}})
def get_job(job_id: str, store: StoreDep) -> JobPublic:
    with store.session() as session:
        job = session.get(JobRow, job_id)
        if job is None:
            raise HTTPException(404, f"no job with id {job_id!r}")
        return JobPublic(id=job.id, kind=job.kind, status=job.status, request=job.request, result=job.result,
                         error=job.error, created_at=job.created_at, updated_at=job.updated_at)
