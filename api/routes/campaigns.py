"""Campaigns: submit, list, watch, cancel, resume, results and the HTML report."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from api.broker import broker_reachable
from api.deps import SettingsDep, StoreDep, require_token
from api.schemas import (
    CampaignAccepted,
    CampaignBrief,
    CampaignCreate,
    CampaignPublic,
    CampaignsPublic,
    ErrorPublic,
)
from services.campaigns.config import CampaignConfig
from services.campaigns.progress import cancel, create_campaign, progress, resume
from services.campaigns.results import CampaignResults, campaign_results
from services.report import render_report
from services.settings import Settings
from services.store import Store
from services.store.models import Campaign
from workers.dispatch import dispatch

log = logging.getLogger(__name__)
NOT_FOUND = {404: {"model": ErrorPublic, "description": "No campaign with this id."}}
router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], dependencies=[Depends(require_token)])
Status = Literal["pending", "running", "completed", "failed", "cancelled"]


def _existing(store: Store, campaign_id: str) -> Campaign:
    with store.session() as session:
        campaign = session.get(Campaign, campaign_id)
    if campaign is None:
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


@router.post("", operation_id="submit_campaign", status_code=202)
def submit_campaign(body: CampaignCreate, store: StoreDep, settings: SettingsDep,
                    response: Response) -> CampaignAccepted:
    """Store the campaign and enqueue its first stage."""
    config = CampaignConfig.model_validate(body.model_dump())
    campaign_id = create_campaign(store, config)
    dispatched = _dispatch(store, settings, campaign_id)
    response.headers["Location"] = f"/v1/campaigns/{campaign_id}"
    return CampaignAccepted(id=campaign_id, status=_existing(store, campaign_id).status, dispatched=dispatched)


@router.get("", operation_id="list_campaigns")
def list_campaigns(
    store: StoreDep,
    status: Annotated[Status | None, Query(description="Only campaigns in this state.")] = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CampaignsPublic:
    """Newest first."""
    where = [Campaign.status == status] if status else []
    with store.session() as session:
        count = session.scalar(select(func.count()).select_from(Campaign).where(*where))
        rows = session.scalars(select(Campaign).where(*where).order_by(Campaign.created_at.desc(), Campaign.id)
                               .offset(skip).limit(limit))
        data = [CampaignBrief(id=c.id, name=c.name, status=c.status, stage=c.stage, created_at=c.created_at)
                for c in rows]
    return CampaignsPublic(data=data, count=count)


@router.get("/{campaign_id}", operation_id="get_campaign", responses=NOT_FOUND)
def get_campaign(campaign_id: str, store: StoreDep) -> CampaignPublic:
    """Status, per-stage progress, tokens, cost and ETA."""
    campaign = _existing(store, campaign_id)
    return CampaignPublic(**progress(store, campaign_id).model_dump(), created_at=campaign.created_at,
                          config=CampaignConfig.model_validate(campaign.config))


@router.post("/{campaign_id}/cancel", operation_id="cancel_campaign", responses=NOT_FOUND)
def cancel_campaign(campaign_id: str, store: StoreDep) -> CampaignPublic:
    """Stop new work; running items finish and their results are kept."""
    _existing(store, campaign_id)
    cancel(store, campaign_id)
    return get_campaign(campaign_id, store)


@router.post("/{campaign_id}/resume", operation_id="resume_campaign",
             responses={**NOT_FOUND, 409: {"model": ErrorPublic, "description": "Already completed."}})
def resume_campaign(campaign_id: str, store: StoreDep, settings: SettingsDep) -> CampaignPublic:
    """Continue a cancelled or failed campaign."""
    if _existing(store, campaign_id).status == "completed":
        raise HTTPException(409, f"campaign {campaign_id} is completed; nothing to resume")
    resume(store, campaign_id)
    _dispatch(store, settings, campaign_id)
    return get_campaign(campaign_id, store)


@router.get("/{campaign_id}/results", operation_id="get_campaign_results", responses=NOT_FOUND)
def get_results(
    campaign_id: str, store: StoreDep,
    skip: Annotated[int, Query(ge=0, le=1_000_000, description="Neurons to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Neurons per page.")] = 20,
) -> CampaignResults:
    """Neurons with their contexts, head attributions, explanations, predictions and scores."""
    _existing(store, campaign_id)
    return campaign_results(store, campaign_id, skip=skip, limit=limit)


@router.get("/{campaign_id}/report", operation_id="get_campaign_report", response_class=HTMLResponse,
            responses={**NOT_FOUND, 200: {"content": {"text/html": {}}, "description": "The HTML report."}})
def get_report(
    campaign_id: str, store: StoreDep,
    baseline: Annotated[str | None, Query(max_length=64, description="Random-neuron baseline campaign id.")] = None,
) -> HTMLResponse:
    """A self-contained HTML report (figures embedded)."""

    _existing(store, campaign_id)
    if baseline is not None:
        _existing(store, baseline)
    return HTMLResponse(render_report(store, campaign_id, baseline))
