"""Helpers of the campaign state-machine tests (test_campaign_lifecycle, test_campaign_failures):
reading items and counting rows of a campaign, fast item retries, a refuse hook for the fake
LLM server. Their fixtures (``fake_llm``, ``config``) are in conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import error  # noqa: E402

from services.campaigns.stages import STAGES  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import WorkItem  # noqa: E402

STAGE_NAMES = [stage.name for stage in STAGES]


def items(store: Store, campaign_id: str, stage: str) -> list[WorkItem]:
    with store.session() as session:
        return list(session.scalars(select(WorkItem).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == stage).order_by(WorkItem.id)))


def count(store: Store, table, campaign_id: str) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(table).where(table.campaign_id == campaign_id))


def stages_of(store: Store, item_ids: list[int]) -> dict[str, int]:
    """How many of these items each stage has."""
    with store.session() as session:
        return dict(session.execute(select(WorkItem.stage, func.count()).where(WorkItem.id.in_(item_ids))
                                    .group_by(WorkItem.stage)).all())


def fast_retries(monkeypatch, runtime, attempts: int = 3) -> None:
    monkeypatch.setattr(runtime.settings, "item_max_attempts", attempts)
    monkeypatch.setattr(runtime.settings, "item_retry_initial_s", 0.05)


def refuse_once(nth: int):
    """A refuse hook: the ``nth`` explanation prompt is refused (400), once."""
    seen: list[str] = []

    def refuse(prompt: str):
        if "Answer:" in prompt:  # a judge's prompt
            return None
        seen.append(prompt)
        return error(400, "this prompt is refused") if len(seen) == nth else None

    return refuse

