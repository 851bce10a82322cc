"""Progress inside a long work item (a scan shard, the held-out test scan): what it has done,
written to its work item row every few seconds so that ``lookups run``, the API and the report
can show documents done, tokens per second and an ETA while it runs."""

from __future__ import annotations

import logging
import time

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.campaigns.records import StageItem
from services.schemas import ItemProgress
from services.store import Store
from services.store.models import WorkItem

log = logging.getLogger(__name__)
REPORT_EVERY_S = 2.0


class ProgressReporter:
    """Call it with (done, tokens) as the work goes; it writes to the item's row at most every
    ``every_s`` seconds, in a transaction of its own. Progress is advisory: a failed write is
    logged and the item goes on."""

    def __init__(self, store: Store, stage: str, item: StageItem, unit: str, total: int,
                 every_s: float = REPORT_EVERY_S):
        self.store, self.stage, self.item, self.every_s = store, stage, item, every_s
        self.latest = ItemProgress(unit=unit, done=0, total=total, tokens=0, elapsed_s=0.0)
        self._start = time.monotonic()
        self._written = self._start

    def __call__(self, done: int, tokens: int) -> None:
        now = time.monotonic()
        self.latest = self.latest.model_copy(update={"done": done, "tokens": tokens, "elapsed_s": now - self._start})
        if now - self._written < self.every_s:
            return
        self._written = now
        try:
            with self.store.session() as session:
                self.write(session)
        except Exception:  # the store briefly away: the next report, or the result, writes it
            log.warning("could not record the progress of %s %s", self.stage, self.item.key, exc_info=True)

    def write(self, session: Session) -> None:
        """Store the latest progress (an item's writer calls this with its final figures)."""
        session.execute(update(WorkItem).where(
            WorkItem.campaign_id == self.item.campaign_id, WorkItem.stage == self.stage,
            WorkItem.key == self.item.key).values(progress=self.latest))
