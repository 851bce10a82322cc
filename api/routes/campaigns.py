"""Campaigns: submit, list, watch, cancel, resume, results and the HTML report."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from api.access import Principal, check_campaign_size, visible
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
from api.middleware import report_policy
from api.schemas import (
    CampaignAccepted,
    CampaignBrief,
    CampaignCreate,
    CampaignPublic,
    CampaignsPublic,
    ErrorPublic,
)
from lookups import InvalidInputError
from services.campaigns.config import CampaignConfig
from services.campaigns.lifecycle import cancel, create_campaign, resume
from services.campaigns.results import CampaignResults, campaign_results
from services.campaigns.status_view import progress
from services.report import render_report
from services.settings import Settings
from services.store import Store
from services.store.models import Campaign
from services.store.statuses import CampaignStatus
from workers.dispatch import dispatch

log = logging.getLogger(__name__)
NOT_FOUND = {404: {"model": ErrorPublic, "description": "No campaign with this id that this principal may see."}}
router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], dependencies=[Depends(require_token)])
# OpenAPI links: the operations that take the accepted campaign's id (clients and schemathesis's
# stateful tests follow them).
ACCEPTED = {202: {"links": {
    name: {"operationId": operation, "parameters": {"campaign_id": "$response.body#/id"}}
    for name, operation in [("GetCampaign", "get_campaign"), ("GetCampaignResults", "get_campaign_results"),
                            ("GetCampaignReport", "get_campaign_report"), ("CancelCampaign", "cancel_campaign"),
                            ("ResumeCampaign", "resume_campaign")]}}}
# The report is HTML and its errors are JSON; FastAPI documents every response of an HTML route
# as text/html unless the media type is given.
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The HTML report."},
    **{code: {"description": NOT_FOUND[404]["description"] if code == 404 else HTTPStatus(code).phrase,
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}}
       for code in (400, 401, 403, 404, 413, 422)}}


def _existing(store: Store, campaign_id: str, principal: Principal) -> Campaign:
    """The campaign, if the principal may see it; 404 alike for others' and for none."""
    with store.session() as session:
        campaign = session.get(Campaign, campaign_id)
    if campaign is None or not visible(campaign.owner, principal):
        raise HTTPException(404, f"no campaign with id {campaign_id!r}")
    return campaign


def _dispatch(store: Store, settings: Settings, campaign_id: str) -> bool:
    """Plan the current stage and enqueue it; a broker that is down only delays the campaign."""

    if not broker_reachable(settings.broker_url):
        return False
    try:
        dispatch(store, campaign_id)
        return True
    except Exception:
        log.exception("could not dispatch campaign %s now; the orchestrator will", campaign_id)
        return False


@router.post("", operation_id="submit_campaign", status_code=202, responses={**ACCEPTED, **RATE_LIMITED})
def submit_campaign(body: CampaignCreate, store: StoreDep, settings: SettingsDep, limiter: LimiterDep,
                    principal: PrincipalDep, response: Response) -> CampaignAccepted:
    """Store the campaign and enqueue its first stage. Its corpus, model and backends must be
    ones the API allows, and its size under the cap (422 naming the field otherwise)."""
    config = CampaignConfig.model_validate(body.model_dump())
    refuse([*access_problems(config.model_dump(), settings),
            *check_campaign_size(neurons=config.neurons, layers=config.layers, per_layer=config.per_layer,
                                 max_train_docs=config.max_train_docs, max_test_docs=config.max_test_docs,
                                 cap=settings.api_max_campaign_size)])
    count_submission(limiter, principal)
    campaign_id = create_campaign(store, config, owner=principal.name)
    dispatched = _dispatch(store, settings, campaign_id)
    response.headers["Location"] = f"/v1/campaigns/{campaign_id}"
    return CampaignAccepted(id=campaign_id, status=_existing(store, campaign_id, principal).status,
                            dispatched=dispatched)


@router.get("", operation_id="list_campaigns")
def list_campaigns(
    store: StoreDep,
    principal: PrincipalDep,
    status: Annotated[CampaignStatus | None, Query(description="Only campaigns in this state.")] = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CampaignsPublic:
    """Newest first: the principal's own campaigns (an admin's: all)."""
    where = [Campaign.status == status] if status else []
    if not principal.admin:
        where.append(Campaign.owner == principal.name)
    with store.session() as session:
        count = session.scalar(select(func.count()).select_from(Campaign).where(*where))
        # A brief shows no config: not loading it spares validating every campaign's.
        rows = session.scalars(select(Campaign).options(defer(Campaign.config)).where(*where)
                               .order_by(Campaign.created_at.desc(), Campaign.id).offset(skip).limit(limit))
        data = [CampaignBrief(id=c.id, name=c.name, status=c.status, stage=c.stage, created_at=c.created_at)
                for c in rows]
    return CampaignsPublic(data=data, count=count)


@router.get("/{campaign_id}", operation_id="get_campaign", responses=NOT_FOUND)
def get_campaign(campaign_id: str, store: StoreDep, principal: PrincipalDep) -> CampaignPublic:
    """Status, per-stage progress, tokens, cost and ETA."""
    campaign = _existing(store, campaign_id, principal)
    return CampaignPublic(**progress(store, campaign_id).model_dump(), created_at=campaign.created_at,
                          config=campaign.config)


@router.post("/{campaign_id}/cancel", operation_id="cancel_campaign", responses=NOT_FOUND)
def cancel_campaign(campaign_id: str, store: StoreDep, principal: PrincipalDep) -> CampaignPublic:
    """Stop new work; running items finish and their results are kept."""
    _existing(store, campaign_id, principal)
    cancel(store, campaign_id)
    return get_campaign(campaign_id, store, principal)


@router.post("/{campaign_id}/resume", operation_id="resume_campaign",
             responses={**NOT_FOUND, 409: {"model": ErrorPublic,
                                           "description": "Completed, or no failed item left to retry."}})
def resume_campaign(campaign_id: str, store: StoreDep, settings: SettingsDep,
                    principal: PrincipalDep) -> CampaignPublic:
    """Continue a cancelled or failed campaign, or retry the failed items of one that is
    completed_with_failures: they run again and their results flow through the later stages."""
    if _existing(store, campaign_id, principal).status == CampaignStatus.COMPLETED:
        raise HTTPException(409, f"campaign {campaign_id} is completed; nothing to resume")
    try:
        resume(store, campaign_id)
    except InvalidInputError as error:  # completed meanwhile, or completed_with_failures with nothing to retry
        raise HTTPException(409, str(error)) from None
    _dispatch(store, settings, campaign_id)
    return get_campaign(campaign_id, store, principal)


@router.get("/{campaign_id}/results", operation_id="get_campaign_results", responses=NOT_FOUND)
def get_results(
    campaign_id: str, store: StoreDep, principal: PrincipalDep,
    skip: Annotated[int, Query(ge=0, le=1_000_000, description="Neurons to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Neurons per page.")] = 20,
) -> CampaignResults:
    """Neurons with their contexts, head attributions, explanations, predictions and scores."""
    _existing(store, campaign_id, principal)
    return campaign_results(store, campaign_id, skip=skip, limit=limit)


@router.get("/{campaign_id}/report", operation_id="get_campaign_report", response_class=HTMLResponse,
            responses=REPORT_RESPONSES)
def get_report(
    campaign_id: str, store: StoreDep, principal: PrincipalDep,
    baseline: Annotated[str | None, Query(max_length=64, description="Random-neuron baseline campaign id.")] = None,
) -> HTMLResponse:
    """A self-contained HTML report (figures embedded), under a policy that lets it load nothing
    and run no script."""

    _existing(store, campaign_id, principal)
    if baseline is not None:
        _existing(store, baseline, principal)
    html = render_report(store, campaign_id, baseline)
    return HTMLResponse(html, headers={"Content-Security-Policy": report_policy(html)})
