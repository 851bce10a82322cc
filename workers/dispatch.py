"""Moving campaigns on: advance their stages and send pending items to their queues."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from services.campaigns.lifecycle import active_campaigns, advance, mark_queued, reconcile
from services.settings import get_settings
from services.store import Store
from services.store.models import WorkItem
from workers.app import app

log = logging.getLogger(__name__)


def dispatch(store: Store, campaign_id: str) -> int:
    """Enqueue every pending item of the stages planned so far; returns how many were sent.

    An item is marked queued before its message is sent; if the broker is down the send fails,
    the item stays queued, and ``reconcile`` makes it pending again later.
    """

    sent = 0
    for item_id in advance(store, campaign_id):
        with store.session() as session:
            queue = session.get(WorkItem, item_id).queue
        if mark_queued(store, item_id):
            app.send_task(f"lookups.{queue}.run_item", args=[item_id])
            sent += 1
    return sent


def dispatch_item_campaign(store: Store, item_id: int) -> None:
    with store.session() as session:
        campaign_id = session.get(WorkItem, item_id).campaign_id
    try:
        dispatch(store, campaign_id)
    except Exception:  # the orchestrator will retry; never fail a finished item over this
        log.exception("could not dispatch campaign %s after item %s", campaign_id, item_id)


def orchestrate(store: Store, *, once: bool = False) -> None:
    """The reconcile loop: re-enqueue lost items and move every active campaign on."""
    settings = get_settings()
    while True:
        try:
            reconcile(store, timedelta(seconds=settings.stale_after_s))
            for campaign_id in active_campaigns(store):
                dispatch(store, campaign_id)
        except Exception:  # broker or database briefly away: try again next round
            log.exception("orchestrator round failed")
        if once:
            return
        time.sleep(settings.orchestrate_interval_s)
