"""The campaign state machine: a campaign is created, its stages planned, its items claimed,
finished, failed, released, reconciled; a campaign is cancelled or resumed.

The store is the source of truth; a queue only carries item ids. So a campaign survives the
loss of any worker or of the broker: ``reconcile`` finds items whose message was lost (queued or
running for too long) and makes them pending again, and finishing an item twice writes nothing.

Item states: pending -> queued -> running -> done | failed. A transient error (see
``services.transient``) hands a running item back to queued for another try; only the last
allowed try, or any other error, marks it failed.

Campaign states: pending -> running -> completed | completed_with_failures | failed | cancelled.

- ``completed``: every stage ran and no item is failed (a failed agent round that its head's
  ``final`` accounted for does not count: see ``Stage.absorbed``).
- ``completed_with_failures``: every stage ran, but some items failed and their results are
  missing (a head without its explanation, say); the stage went on without them.
- ``failed``: every item of one stage failed, so the campaign could not go on.
- ``cancelled``: stopped by a user.

Every state but ``completed`` can be resumed (``resume``): failed items are tried again and
their results flow through the later stages.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast

from sqlalchemy import CursorResult, func, select, update

from lookups import InvalidInputError
from services.campaigns.config import CampaignConfig
from services.campaigns.records import StageItem, Writer
from services.campaigns.stages import STAGE_BY_NAME, STAGE_NAMES, STAGES, Stage
from services.store import Store
from services.store.models import (
    Campaign,
    WorkItem,
    utcnow,
)
from services.store.statuses import CampaignStatus, ItemStatus

ACTIVE = (CampaignStatus.PENDING, CampaignStatus.RUNNING)
FINISHED = (CampaignStatus.COMPLETED, CampaignStatus.COMPLETED_WITH_FAILURES)  # every stage ran
TERMINAL_ITEM = (ItemStatus.DONE, ItemStatus.FAILED)


def create_campaign(store: Store, config: CampaignConfig, owner: str | None = None) -> str:
    """Store a pending campaign; ``owner`` is the API principal submitting it (None: admins only)."""
    campaign_id = uuid.uuid4().hex
    with store.session() as session:
        session.add(Campaign(
            id=campaign_id, name=config.name, status=CampaignStatus.PENDING, stage=None, owner=owner,
            config=config,
            provenance={"explainer": config.explainer, "classifier": config.classifier,
                        "explainer_template": config.explainer_template,
                        "classifier_template": config.classifier_template,
                        "explainer_strategy": config.explainer_strategy, "scorers": config.scorers,
                        "activity": config.activity, "test_sampling": config.test_sampling,
                        "test_prompts_per_head": config.test_prompts_per_head},
        ))
    return campaign_id


def get_campaign(session, campaign_id: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise InvalidInputError(f"no campaign with id {campaign_id!r}")
    return campaign


def resolve_campaign_id(store: Store, reference: str) -> str:
    """A campaign id, or ``latest`` for the most recently created campaign in the store."""
    if reference != "latest":
        return reference
    with store.session() as session:
        found = session.scalar(select(Campaign.id).order_by(Campaign.created_at.desc()).limit(1))
    if found is None:
        raise InvalidInputError(f"the store {store.url} holds no campaign yet")
    return found


def _next_stage(current: str | None) -> Stage | None:
    if current is None:
        return STAGES[0]
    index = STAGE_NAMES.index(current)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


def advance(store: Store, campaign_id: str) -> list[int]:
    """Plan every stage whose needs have finished; return the campaign's pending item ids.

    Stages are planned in ``STAGES`` order and ``campaigns.stage`` names the last one planned;
    the next one is planned as soon as the stages it ``needs`` have finished, while earlier
    stages it does not need may still be running. The flip is a compare-and-set on
    ``campaigns.stage``, so when several workers finish items at once, exactly one of them plans
    the next stage.
    """
    while True:
        with store.session() as session:
            campaign = get_campaign(session, campaign_id)
            if campaign.status not in ACTIVE:
                return []
            counts = item_counts(session, campaign_id)
            current = STAGE_BY_NAME[campaign.stage] if campaign.stage is not None else None
            if current is not None and current.repeats:
                if not finished(counts, current.name):
                    return _pending(session, campaign)
                fresh = _plan_again(session, campaign, current)
                if fresh is None or (not fresh and _has_open_items(session, campaign_id, current.name)):
                    continue  # another process planned this round first; look again
                if fresh:
                    return _pending(session, campaign)
            following = _next_stage(campaign.stage)
            if following is None:
                if any(not finished(counts, name) for name in STAGE_NAMES):
                    return _pending(session, campaign)
                _complete(session, campaign, counts)
                return []
            if any(not finished(counts, name) for name in following.needs):
                return _pending(session, campaign)
            if (empty := _all_failed(session, campaign_id, counts, following.needs)) is not None:
                campaign.status, campaign.error = CampaignStatus.FAILED, empty
                return []
            current_is = Campaign.stage.is_(None) if campaign.stage is None else Campaign.stage == campaign.stage
            flipped = cast(CursorResult, session.execute(
                update(Campaign).where(Campaign.id == campaign_id, current_is, Campaign.status.in_(ACTIVE))
                .values(stage=following.name, status=CampaignStatus.RUNNING)
                .execution_options(synchronize_session=False))).rowcount
            if not flipped:
                continue  # another process advanced it first; look again
            session.expire(campaign)
            # A resumed campaign enters this stage again: its items already there stay (done, or
            # pending to be tried again); only keys it lacks are added.
            existing = set(session.scalars(select(WorkItem.key).where(
                WorkItem.campaign_id == campaign_id, WorkItem.stage == following.name)))
            for key in dict.fromkeys(following.plan(session, campaign)):
                if key not in existing:
                    session.add(WorkItem(campaign_id=campaign_id, stage=following.name, key=key,
                                         queue=following.item_queue(key), status=ItemStatus.PENDING))


def item_counts(session, campaign_id: str) -> dict[str, dict[str, int]]:
    """Item counts by stage and status."""
    counts: dict[str, dict[str, int]] = {}
    for stage, status, count in session.execute(select(WorkItem.stage, WorkItem.status, func.count()).where(
            WorkItem.campaign_id == campaign_id).group_by(WorkItem.stage, WorkItem.status)):
        counts.setdefault(stage, {})[status] = count
    return counts


def finished(counts: dict[str, dict[str, int]], stage: str) -> bool:
    """Whether every item of the stage is done or failed (a stage with no items is)."""
    return all(status in TERMINAL_ITEM for status in counts.get(stage, {}))


def _all_failed(session, campaign_id: str, counts: dict[str, dict[str, int]], stages) -> str | None:
    """Why the campaign cannot go on, when every item of one of these finished stages failed."""
    for name in stages:
        if counts.get(name, {}).get(ItemStatus.FAILED) and not counts[name].get(ItemStatus.DONE):
            error = session.scalar(select(WorkItem.error).where(
                WorkItem.campaign_id == campaign_id, WorkItem.stage == name,
                WorkItem.status == ItemStatus.FAILED).limit(1))
            return f"every item of stage {name!r} failed: {error}"
    return None


def _pending(session, campaign: Campaign) -> list[int]:
    """The pending items of the stages planned so far."""
    planned = STAGE_NAMES[:STAGE_NAMES.index(campaign.stage) + 1] if campaign.stage is not None else []
    return list(session.scalars(select(WorkItem.id).where(
        WorkItem.campaign_id == campaign.id, WorkItem.stage.in_(planned),
        WorkItem.status == ItemStatus.PENDING).order_by(WorkItem.id)))


def _complete(session, campaign: Campaign, counts: dict[str, dict[str, int]]) -> None:
    """End a campaign whose every stage has finished (once, when several processes get here)."""
    empty = _all_failed(session, campaign.id, counts, STAGE_NAMES)
    status = CampaignStatus.FAILED if empty else (
        CampaignStatus.COMPLETED_WITH_FAILURES if open_failures(session, campaign.id) else CampaignStatus.COMPLETED)
    ended = cast(CursorResult, session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.status.in_(ACTIVE))
        .values(status=status, error=empty).execution_options(synchronize_session=False))).rowcount
    session.expire(campaign)
    if ended and not empty:
        _finalize(session, campaign.id)


def _plan_again(session, campaign: Campaign, stage: Stage) -> list[int] | None:
    """A repeating stage's next items, once its current ones have all finished; None when
    another process inserted the same items first (two processes finishing the last items
    together both plan: the unique (campaign, stage, key) lets one of them win)."""
    from sqlalchemy.exc import IntegrityError

    items = [WorkItem(campaign_id=campaign.id, stage=stage.name, key=key, queue=stage.item_queue(key),
                      status=ItemStatus.PENDING) for key in stage.plan(session, campaign)]
    try:
        with session.begin_nested():
            session.add_all(items)
    except IntegrityError:
        return None
    return [item.id for item in items]


def _has_open_items(session, campaign_id: str, stage: str) -> bool:
    """Whether the stage has unfinished items now. A repeating stage whose plan found nothing new
    may only have seen the next round another process planned after this one counted the
    stage's items as finished: the stage must not be left then."""
    return bool(session.scalar(select(func.count()).select_from(WorkItem).where(
        WorkItem.campaign_id == campaign_id, WorkItem.stage == stage, WorkItem.status.not_in(TERMINAL_ITEM))))


def _finalize(session, campaign_id: str) -> None:
    """Campaign-wide figures computed once at the end, by the stages that have them."""
    for stage in STAGES:
        if stage.summarize is not None:
            stage.summarize(session, campaign_id)


def mark_queued(store: Store, item_id: int) -> bool:
    """Claim the right to enqueue a pending item (False if someone else already did)."""
    with store.session() as session:
        return bool(cast(CursorResult, session.execute(
            update(WorkItem).where(WorkItem.id == item_id, WorkItem.status == ItemStatus.PENDING)
            .values(status=ItemStatus.QUEUED, enqueued_at=utcnow()))).rowcount)


def claim(store: Store, item_id: int, *, takeover: bool = False) -> tuple[Stage, StageItem] | None:
    """Start an item, or None when it is finished, running elsewhere, or its campaign is not
    active.

    A running item is claimed only with ``takeover``: the broker redelivered its message because
    the worker holding it was lost. Any other message for a running item is a duplicate (the
    reconcile loop re-sent an item that was merely waiting) and is dropped.
    """
    claimable = ((ItemStatus.PENDING, ItemStatus.QUEUED, ItemStatus.RUNNING) if takeover
                 else (ItemStatus.PENDING, ItemStatus.QUEUED))
    with store.session() as session:
        item = session.get(WorkItem, item_id)
        if item is None or item.status not in claimable:
            return None
        campaign = session.get_one(Campaign, item.campaign_id)
        if campaign.status not in ACTIVE:
            return None
        item.status, item.started_at, item.attempts = ItemStatus.RUNNING, utcnow(), item.attempts + 1
        return STAGE_BY_NAME[item.stage], StageItem(
            campaign_id=campaign.id, config=campaign.config, key=item.key)


def finish(store: Store, item_id: int, write: Writer) -> bool:
    """Store an item's result and mark it done in one transaction; False if it was done already.

    Two runs of one item can finish together (an item slower than ``stale_after_s`` is sent
    again while its first run goes on). The conditional update comes first, so it takes the
    write lock (SQLite) or the row lock (PostgreSQL) before anything is written: the later run
    waits for the earlier one's commit, then matches no row and writes nothing.
    """
    with store.session() as session:
        marked = cast(CursorResult, session.execute(
            update(WorkItem).where(WorkItem.id == item_id, WorkItem.status != ItemStatus.DONE)
            .values(status=ItemStatus.DONE, finished_at=utcnow(), error=None)
            .execution_options(synchronize_session=False))).rowcount
        if not marked:
            return False
        write(session)
        return True


def fail(store: Store, item_id: int, error: str) -> None:
    with store.session() as session:
        item = session.get_one(WorkItem, item_id)
        if item.status != ItemStatus.DONE:
            item.status, item.finished_at, item.error = ItemStatus.FAILED, utcnow(), error[:4000]


def release(store: Store, item_id: int) -> None:
    """Hand a running item back to the queue (its task will be retried)."""
    with store.session() as session:
        session.execute(update(WorkItem).where(WorkItem.id == item_id, WorkItem.status == ItemStatus.RUNNING)
                        .values(status=ItemStatus.QUEUED, enqueued_at=utcnow()))


def reconcile(store: Store, stale_after: timedelta, campaign_id: str | None = None) -> None:
    """Make queued or running items pending again when nothing has happened to them for
    ``stale_after`` (their message or worker was lost)."""
    cutoff = utcnow() - stale_after
    with store.session() as session:
        active = select(Campaign.id).where(Campaign.status.in_(ACTIVE))
        if campaign_id is not None:
            active = active.where(Campaign.id == campaign_id)
        for status, since in ((ItemStatus.QUEUED, WorkItem.enqueued_at), (ItemStatus.RUNNING, WorkItem.started_at)):
            session.execute(update(WorkItem).where(
                WorkItem.campaign_id.in_(active), WorkItem.status == status, since <= cutoff)
                .values(status=ItemStatus.PENDING).execution_options(synchronize_session=False))


def active_campaigns(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(Campaign.id).where(Campaign.status.in_(ACTIVE))
                                    .order_by(Campaign.created_at)))


def cancel(store: Store, campaign_id: str) -> None:
    """Stop new work; running items finish, and their results are kept."""
    with store.session() as session:
        campaign = get_campaign(session, campaign_id)
        if campaign.status in ACTIVE:
            campaign.status = CampaignStatus.CANCELLED


def open_failures(session, campaign_id: str) -> list[WorkItem]:
    """The campaign's failed items whose results are missing, in stage order: every failed item
    but those a stage already accounted for (``Stage.absorbed``)."""
    failed = list(session.scalars(select(WorkItem).where(
        WorkItem.campaign_id == campaign_id, WorkItem.status == ItemStatus.FAILED).order_by(WorkItem.id)))
    settled: set[int] = set()
    for stage in STAGES:
        if stage.absorbed is not None and any(item.stage == stage.name for item in failed):
            settled |= stage.absorbed(session, campaign_id)
    order = {stage.name: index for index, stage in enumerate(STAGES)}
    return sorted((item for item in failed if item.id not in settled), key=lambda item: (order[item.stage], item.id))


def resume(store: Store, campaign_id: str) -> None:
    """Continue a cancelled, failed, interrupted or ``completed_with_failures`` campaign.

    Queued and running items (their message or process was lost) and every failed item (but the
    absorbed ones: see ``open_failures``) become pending. The campaign re-opens at the earliest
    stage with such a failed item, or stays at its current stage if that is earlier. As it then
    reaches each later stage again, ``advance`` adds only the keys the stage lacks (the heads a
    retried explain item explained, say), items already done stay done, and a ``reads_all``
    stage's item (test prompts, scores) runs again so the new results reach the summary.
    """
    with store.session() as session:
        campaign = get_campaign(session, campaign_id)
        if campaign.status == CampaignStatus.COMPLETED:
            raise InvalidInputError(f"campaign {campaign_id} is completed; nothing to resume")
        retry = open_failures(session, campaign_id)
        if campaign.status == CampaignStatus.COMPLETED_WITH_FAILURES and not retry:
            raise InvalidInputError(f"campaign {campaign_id} has no failed item left to retry")
        stage = campaign.stage
        if retry and (stage is None or STAGE_NAMES.index(retry[0].stage) < STAGE_NAMES.index(stage)):
            stage = retry[0].stage
        reopened = stage != campaign.stage or campaign.status in FINISHED
        campaign.stage, campaign.error = stage, None
        campaign.status = CampaignStatus.RUNNING if stage else CampaignStatus.PENDING
        campaign.llm_reserved_usd = 0.0  # no call of it is in flight: give back what lost calls held
        session.execute(update(WorkItem).where(
            WorkItem.campaign_id == campaign_id, WorkItem.status.in_((ItemStatus.QUEUED, ItemStatus.RUNNING)))
            .values(status=ItemStatus.PENDING).execution_options(synchronize_session=False))
        if retry:
            session.execute(update(WorkItem).where(WorkItem.id.in_([item.id for item in retry]))
                            .values(status=ItemStatus.PENDING).execution_options(synchronize_session=False))
        if reopened and stage is not None:
            again = [s.name for s in STAGES[STAGE_NAMES.index(stage) + 1:] if s.reads_all]
            session.execute(update(WorkItem).where(
                WorkItem.campaign_id == campaign_id, WorkItem.stage.in_(again), WorkItem.status == ItemStatus.DONE)
                .values(status=ItemStatus.PENDING).execution_options(synchronize_session=False))
