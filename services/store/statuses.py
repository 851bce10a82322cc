"""The states of a campaign, a work item and a job: the only values of their rows' ``status``.

The columns stay strings (what is stored does not change); a CHECK constraint per table holds
the database to these values (``services.store.models``), and the API documents them. The
transitions: ``services.campaigns.lifecycle`` (campaigns, items) and ``services.jobs``.
"""

from __future__ import annotations

from enum import StrEnum


class CampaignStatus(StrEnum):
    """A campaign's state: pending, running, then completed, completed_with_failures, failed or
    cancelled."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ItemStatus(StrEnum):
    """A work item's state: pending, queued, running, then done or failed."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobStatus(StrEnum):
    """A job's state: pending, queued, running, then done or failed."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
