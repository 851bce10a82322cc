"""A campaign's budget, kept in its row of the results store so that every worker process
reserves against the same ledger: ``llm_reserved_usd`` (worst cases of calls in flight) and
``llm_spent_usd`` (billed, calls of failed items included).

A reservation is one conditional UPDATE (atomic on SQLite and on PostgreSQL, which re-checks the
WHERE of a row another transaction changed first), so N processes never together pass the cap.
A process killed mid-call leaves its reservation held: the cap only gets stricter, and ``clear``
(at ``resume``, or when ``lookups run`` takes a campaign over) gives it back.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import CursorResult, update

from services.campaigns.records import StageItem
from services.llm.budget import exceeded
from services.store import Store
from services.store.models import Campaign


class CampaignBudget:
    def __init__(self, store: Store, campaign_id: str, cap_usd: float):
        self.store, self.campaign_id, self.cap_usd = store, campaign_id, cap_usd

    def reserve(self, worst_usd: float) -> None:
        with self.store.session() as session:
            held = cast(CursorResult, session.execute(
                update(Campaign).where(
                    Campaign.id == self.campaign_id,
                    Campaign.llm_spent_usd + Campaign.llm_reserved_usd + worst_usd <= self.cap_usd)
                .values(llm_reserved_usd=Campaign.llm_reserved_usd + worst_usd)
                .execution_options(synchronize_session=False))).rowcount
            if not held:
                campaign = session.get_one(Campaign, self.campaign_id)
                raise exceeded(self.cap_usd, campaign.llm_spent_usd, campaign.llm_reserved_usd, worst_usd)

    def settle(self, worst_usd: float, actual_usd: float) -> None:
        with self.store.session() as session:
            session.execute(
                update(Campaign).where(Campaign.id == self.campaign_id)
                .values(llm_reserved_usd=Campaign.llm_reserved_usd - worst_usd,
                        llm_spent_usd=Campaign.llm_spent_usd + actual_usd)
                .execution_options(synchronize_session=False))


def campaign_budget(store: Store, item: StageItem) -> CampaignBudget | None:
    """The budget an item's LLM calls reserve against; None when the campaign has no cap."""
    if item.config.budget_usd is None:
        return None
    return CampaignBudget(store, item.campaign_id, item.config.budget_usd)


def clear_reservations(store: Store, campaign_id: str) -> None:
    """Give back reservations left by calls that never settled (their process was lost); only
    for a caller that knows no call of the campaign is in flight."""
    with store.session() as session:
        session.execute(update(Campaign).where(Campaign.id == campaign_id).values(llm_reserved_usd=0.0)
                        .execution_options(synchronize_session=False))
