"""Spending caps the one call path reserves against before every call.

A call first reserves its worst-case cost (prompt tokens estimated, ``max_tokens`` out); the
reservation is settled with the billed cost after the call, or released if it failed. So calls
in flight together, in threads or in processes, can never pass the cap.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from lookups import BudgetExceededError


@runtime_checkable
class Budget(Protocol):
    def reserve(self, worst_usd: float) -> None:
        """Hold ``worst_usd`` of the cap, or raise ``BudgetExceededError`` and hold nothing."""

    def settle(self, worst_usd: float, actual_usd: float) -> None:
        """Give back a reservation of ``worst_usd`` and count ``actual_usd`` as spent (0: a failed call)."""


def exceeded(cap: float, spent: float, reserved: float, worst: float) -> BudgetExceededError:
    held = f", ${reserved:.4f} held by calls in flight" if reserved > 1e-12 else ""
    return BudgetExceededError(
        f"budget cap ${cap:.4f} reached: spent ${spent:.4f}{held}, the next call could cost up to "
        f"${worst:.4f}; stopped before it (completed calls are cached)")


class LocalBudget:
    """A cap for one process's calls (a single job, ``lookups explain`` or ``lookups classify``)."""

    def __init__(self, cap_usd: float):
        self.cap_usd = cap_usd
        self.spent_usd = 0.0
        self._reserved_usd = 0.0
        self._lock = threading.Lock()

    def reserve(self, worst_usd: float) -> None:
        with self._lock:
            if self.spent_usd + self._reserved_usd + worst_usd > self.cap_usd:
                raise exceeded(self.cap_usd, self.spent_usd, self._reserved_usd, worst_usd)
            self._reserved_usd += worst_usd

    def settle(self, worst_usd: float, actual_usd: float) -> None:
        with self._lock:
            self._reserved_usd -= worst_usd
            self.spent_usd += actual_usd


def local_budget(cap_usd: float | None) -> LocalBudget | None:
    return None if cap_usd is None else LocalBudget(cap_usd)
