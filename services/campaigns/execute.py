"""Run one work item: claim it, compute it, store its result, or record why it failed; a
transient error is tried again (``run_item`` in one process, the task's retry in a worker)."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Literal

from sqlalchemy import select

from services.campaigns.budget import clear_reservations
from services.campaigns.lifecycle import advance, claim, fail, finish, reconcile, release
from services.campaigns.status_view import CampaignProgress, progress
from services.llm.registry import preload_backends
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign, WorkItem
from services.transient import describe, failure_message, is_transient, retry_delay

log = logging.getLogger(__name__)

Outcome = Literal["done", "duplicate", "skipped", "failed"]


def execute_item(
    store: Store,
    runtime: Runtime,
    item_id: int,
    *,
    takeover: bool = False,
    retry_transient: bool = True,
) -> Outcome:
    """Claim one item, compute it and store its result, or record why it failed.

    A transient error (``services.transient``: the store or broker briefly away, a start-up race,
    a backend still unavailable) hands the item back and propagates, so that the caller tries it
    again later (``run_item`` here, the task's retry in a worker); with ``retry_transient=False``
    (the last try) it fails the item like any other error. Any other error marks the item failed
    with its message at once, and the rest of the stage goes on.
    ``takeover``: the item's previous holder is known to be lost (see ``claim``).
    """
    claimed = claim(store, item_id, takeover=takeover)  # a transient error here changed nothing
    if claimed is None:
        return "skipped"
    stage, item = claimed
    try:
        write = stage.compute(runtime, store, item)
        return "done" if finish(store, item_id, write) else "duplicate"
    except Exception as error:
        message = failure_message(error, retry=retry_transient)
        if message is None:
            log.warning("item %s (%s %s): %s; it will be tried again", item_id, stage.name, item.key,
                        describe(error))
            _hand_back(store, item_id)
            raise
        log.exception("item %s (%s %s) failed", item_id, stage.name, item.key)
        fail(store, item_id, message)
        return "failed"


def _hand_back(store: Store, item_id: int) -> None:
    """Release the item for its next try; if the store itself is away, the item stays running
    and a retry takes it over (or ``reconcile`` makes it pending once it is stale)."""
    try:
        release(store, item_id)
    except Exception:
        log.exception("could not hand item %s back", item_id)


def run_item(store: Store, runtime: Runtime, item_id: int) -> Outcome:
    """``execute_item`` in a process that owns the campaign, tried again after a transient error
    up to ``item_max_attempts`` times with doubling waits; the last try fails the item."""
    settings = runtime.settings
    for attempt in range(1, settings.item_max_attempts + 1):
        last = attempt == settings.item_max_attempts
        try:
            # After a failed try this process still owns the item, even if handing it back failed.
            return execute_item(store, runtime, item_id, takeover=attempt > 1, retry_transient=not last)
        except Exception as error:
            if last or not is_transient(error):
                raise
            delay = retry_delay(attempt, settings.item_retry_initial_s, settings.item_retry_max_s)
            log.warning("item %s: try %d of %d failed (%s); next try in %.1f s", item_id, attempt,
                        settings.item_max_attempts, describe(error), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - item_max_attempts >= 1


def run_in_process(store: Store, campaign_id: str, runtime: Runtime, on_item=None,
                   llm_concurrency: int = 1) -> CampaignProgress:
    """Run a whole campaign in this process; safe to call again to resume.

    Items of the llm queue run ``llm_concurrency`` at a time in threads (each backend still makes
    at most its own ``max_concurrency`` calls at once: a local model answers one at a time); gpu
    items run one by one in this thread, meanwhile. Stages are planned again whenever the last
    item of a stage here finishes, so a stage starts as soon as its needs are done (classify
    while the last ablations run), whichever queue they were on.
    ``on_item(item_id, outcome)`` is called as each item finishes, in the thread that ran it. On
    an interrupt, items not started are left pending and running ones finish.
    """
    reconcile(store, timedelta(0), campaign_id)  # this process owns the campaign: restart leftovers
    with store.session() as session:
        config = session.get_one(Campaign, campaign_id).config
    preload_backends([config.explainer, config.classifier])  # imported while the gpu stages run
    clear_reservations(store, campaign_id)  # and no call of it is in flight
    report = on_item or (lambda item_id, outcome: None)

    def run_and_report(item_id: int) -> None:
        report(item_id, run_item(store, runtime, item_id))

    # The items started here, each once (run_item returns only when it is settled), by stage.
    stage_of: dict[int, str] = {}
    open_items: Counter[str] = Counter()  # items started here and not finished, by stage
    gpu_items: deque[int] = deque()
    llm_items: dict[Future, int] = {}
    pool = ThreadPoolExecutor(max_workers=llm_concurrency, thread_name_prefix="llm-item")
    replan = True
    try:
        while True:
            if replan:
                fresh = [i for i in advance(store, campaign_id) if i not in stage_of]
                with store.session() as session:
                    rows = session.execute(select(WorkItem.id, WorkItem.queue, WorkItem.stage)
                                           .where(WorkItem.id.in_(fresh)).order_by(WorkItem.id)).all()
                for item_id, queue, stage in rows:
                    stage_of[item_id] = stage
                    open_items[stage] += 1
                    if queue == "llm":
                        llm_items[pool.submit(run_and_report, item_id)] = item_id
                    else:
                        gpu_items.append(item_id)
            if gpu_items:
                item_id = gpu_items.popleft()
                run_and_report(item_id)
                finished = [item_id]
                done = {future for future in llm_items if future.done()}
            elif llm_items:
                finished = []
                done = wait(llm_items, return_when=FIRST_COMPLETED).done
            else:
                break
            for future in done:
                future.result()  # an error no item could record stops the run, as in this thread
                finished.append(llm_items.pop(future))
            open_items.subtract(stage_of[item_id] for item_id in finished)
            # Only a stage's last item can let the next stage start: plan again then.
            replan = any(open_items[stage_of[item_id]] == 0 for item_id in finished)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return progress(store, campaign_id)
