"""Run one work item: claim it, compute it, store its result, or record why it failed."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from services.campaigns.progress import (
    CampaignProgress,
    advance,
    claim,
    fail,
    finish,
    progress,
    reconcile,
    release,
)
from services.runtime import Runtime
from services.store import Store

log = logging.getLogger(__name__)

Outcome = Literal["done", "duplicate", "skipped", "failed"]


def execute_item(
    store: Store,
    runtime: Runtime,
    item_id: int,
    retryable: tuple[type[Exception], ...] = (),
    *,
    takeover: bool = False,
) -> Outcome:
    """Errors in ``retryable`` hand the item back and propagate (the caller retries it);
    any other error marks the item failed with its message, so the rest of the stage goes on.
    ``takeover``: the item's previous holder is known to be lost (see ``claim``)."""
    claimed = claim(store, item_id, takeover=takeover)
    if claimed is None:
        return "skipped"
    stage, item = claimed
    try:
        write = stage.compute(runtime, store, item)
    except retryable:
        release(store, item_id)
        raise
    except Exception as error:
        log.exception("item %s (%s %s) failed", item_id, stage.name, item.key)
        fail(store, item_id, f"{type(error).__name__}: {error}")
        return "failed"
    return "done" if finish(store, item_id, write) else "duplicate"


def run_in_process(store: Store, campaign_id: str, runtime: Runtime, on_item=None) -> CampaignProgress:
    """Run a whole campaign in this process, stage by stage; safe to call again to resume."""
    reconcile(store, timedelta(0), campaign_id)  # this process owns the campaign: restart leftovers
    while pending := advance(store, campaign_id):
        for item_id in pending:
            outcome = execute_item(store, runtime, item_id)
            if on_item is not None:
                on_item(item_id, outcome)
    return progress(store, campaign_id)
