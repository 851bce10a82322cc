"""What a campaign's status shows: per-stage item counts, progress inside long items, tokens,
cost, the failures resume would retry, and an ETA. Read-only: the state machine is
``services.campaigns.lifecycle``."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.campaigns.item_progress import ItemProgress
from services.campaigns.lifecycle import ACTIVE, TERMINAL_ITEM, finished, get_campaign, item_counts, open_failures
from services.campaigns.records import LLM_TABLES, campaign_cost
from services.campaigns.stages import STAGE_BY_NAME, STAGES
from services.store import Store
from services.store.models import Campaign, WorkItem
from services.store.statuses import CampaignStatus, ItemStatus

SHOWN_FAILURES = 20  # failed items listed in a campaign's progress


class StageWork(BaseModel):
    """Progress inside a stage's long items (a scan's documents), summed over the items that
    report it (``services.campaigns.item_progress``); items not started yet are not counted."""

    unit: str
    done: int
    total: int
    tokens: int
    tokens_per_s: float | None = Field(description="Summed over the running items (several workers "
                                                   "add up); once none runs, one item's mean.")
    eta_s: float | None = Field(description="Seconds until the running items are done, at their rates.")


class StageProgress(BaseModel):
    stage: str
    total: int
    done: int
    failed: int
    running: int
    pending: int
    work: StageWork | None = None


class ItemFailure(BaseModel):
    id: int
    stage: str
    key: str
    attempts: int
    error: str | None


class CampaignProgress(BaseModel):
    id: str
    name: str
    status: CampaignStatus = Field(description="completed_with_failures: every stage ran but some items "
                                               "failed (resume retries them); failed: every item of a "
                                               "stage failed.")
    stage: str | None = Field(description="The last stage planned; earlier ones it does not need may "
                                          "still be running (see ``stages``).")
    error: str | None
    stages: list[StageProgress]
    failures: list[ItemFailure] = Field(
        default=[], description=f"Failed items whose results are missing, the ones resume retries "
                                f"(at most {SHOWN_FAILURES}; the stage counts give the totals).")
    input_tokens: int
    output_tokens: int
    cost_usd: float
    eta_s: float | None = Field(description="Seconds until the stages planned so far are done.")


def progress(store: Store, campaign_id: str) -> CampaignProgress:
    """Per-stage counts, tokens and cost so far, and an ETA for the stages planned so far."""
    with store.session() as session:
        campaign = get_campaign(session, campaign_id)
        counts = item_counts(session, campaign_id)
        reported: dict[str, list[tuple[str, ItemProgress]]] = {}
        for stage, status, recorded in session.execute(select(WorkItem.stage, WorkItem.status, WorkItem.progress).where(
                WorkItem.campaign_id == campaign_id, WorkItem.progress.is_not(None))):
            if recorded is not None:
                reported.setdefault(stage, []).append((status, recorded))
        stages = [
            StageProgress(stage=s.name, total=sum(counts.get(s.name, {}).values()),
                          done=counts.get(s.name, {}).get(ItemStatus.DONE, 0),
                          failed=counts.get(s.name, {}).get(ItemStatus.FAILED, 0),
                          running=counts.get(s.name, {}).get(ItemStatus.RUNNING, 0),
                          pending=counts.get(s.name, {}).get(ItemStatus.PENDING, 0)
                          + counts.get(s.name, {}).get(ItemStatus.QUEUED, 0),
                          work=_stage_work(reported[s.name]) if s.name in reported else None)
            for s in STAGES
        ]
        tokens_in = tokens_out = 0
        for table in LLM_TABLES:
            a, b = session.execute(select(func.coalesce(func.sum(table.input_tokens), 0),
                                          func.coalesce(func.sum(table.output_tokens), 0))
                                   .where(table.campaign_id == campaign_id)).one()
            tokens_in, tokens_out = tokens_in + a, tokens_out + b
        failures = [ItemFailure(id=item.id, stage=item.stage, key=item.key, attempts=item.attempts,
                                error=item.error) for item in open_failures(session, campaign_id)[:SHOWN_FAILURES]]
        return CampaignProgress(
            id=campaign.id, name=campaign.name, status=campaign.status, stage=campaign.stage,
            error=campaign.error, stages=stages, failures=failures, input_tokens=tokens_in, output_tokens=tokens_out,
            cost_usd=campaign_cost(session, campaign_id), eta_s=_eta(session, campaign, counts),
        )


def _stage_work(items: list[tuple[str, ItemProgress]]) -> StageWork:
    running = [p for status, p in items if status == ItemStatus.RUNNING and p.elapsed_s > 0]
    if running:
        rate: float | None = sum(p.tokens / p.elapsed_s for p in running)
    else:
        elapsed = sum(p.elapsed_s for _, p in items)
        rate = sum(p.tokens for _, p in items) / elapsed if elapsed > 0 else None
    left = [_left_s(p) for p in running]
    return StageWork(unit=items[0][1].unit, done=sum(p.done for _, p in items), total=sum(p.total for _, p in items),
                     tokens=sum(p.tokens for _, p in items), tokens_per_s=rate,
                     eta_s=max(x for x in left if x is not None) if left and None not in left else None)


def _left_s(progress: ItemProgress) -> float | None:
    """Seconds a running item still needs at its rate so far."""
    if progress.done == 0:
        return None
    return progress.elapsed_s * (progress.total - progress.done) / progress.done


def _eta(session, campaign: Campaign, counts: dict[str, dict[str, int]]) -> float | None:
    """Seconds until the stages planned so far are done: each queue works through its stages
    one after the other, the two queues side by side."""
    if campaign.status not in ACTIVE or campaign.stage is None:
        return None
    per_queue: dict[str, float] = {}
    for name in (stage for stage in counts if not finished(counts, stage)):
        left = _stage_eta(session, campaign.id, name)
        if left is None:
            return None
        queue = STAGE_BY_NAME[name].queue
        per_queue[queue] = per_queue.get(queue, 0.0) + left
    return max(per_queue.values(), default=None)


def _stage_eta(session, campaign_id: str, stage: str) -> float | None:
    """A stage's items left times their mean duration (of the finished ones; else as projected
    from the running ones' progress); a running item that reports its progress counts for what
    it has left."""
    items = session.execute(select(WorkItem.status, WorkItem.started_at, WorkItem.finished_at, WorkItem.progress)
                            .where(WorkItem.campaign_id == campaign_id, WorkItem.stage == stage)).all()
    durations = [(f - s).total_seconds() for status, s, f, _ in items if status == ItemStatus.DONE and s and f]
    running = [p for status, _, _, p in items if status == ItemStatus.RUNNING and p]
    running_left = [_left_s(p) for p in running if p.done]
    if not durations:
        durations = [p.elapsed_s * p.total / p.done for p in running if p.done]
    left = sum(1 for status, _, _, _ in items if status not in TERMINAL_ITEM) - len(running_left)
    if not durations:
        return None
    return sum(durations) / len(durations) * left + sum(x for x in running_left if x is not None)
