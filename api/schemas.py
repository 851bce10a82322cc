"""Request and response bodies of the REST API (Base / Create / Public per resource)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from services.campaigns.config import CampaignConfig
from services.campaigns.status_view import CampaignProgress
from services.store.statuses import CampaignStatus


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# The store keeps naive UTC times; the API sends them with their zone ("...Z"), since an
# OpenAPI date-time (RFC 3339) needs one.
UTCDateTime = Annotated[datetime, AfterValidator(_utc)]


class CampaignCreate(CampaignConfig):
    """A campaign is submitted as its config (same fields as a campaign .toml file)."""


class CampaignAccepted(BaseModel):
    id: str
    status: CampaignStatus
    dispatched: bool = Field(description="False when the broker was unreachable; the orchestrator "
                                         "enqueues the campaign once it is back.")


class CampaignBrief(BaseModel):
    id: str
    name: str
    status: CampaignStatus
    stage: str | None
    created_at: UTCDateTime


class CampaignsPublic(BaseModel):
    data: list[CampaignBrief]
    count: int


class CampaignPublic(CampaignProgress):
    created_at: UTCDateTime
    config: CampaignConfig


class Problem(BaseModel):
    field: str = Field(description="Where the problem is, e.g. 'body.corpus' or 'query.limit'.")
    problem: str


class ErrorPublic(BaseModel):
    detail: str
    errors: list[Problem] = []


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
