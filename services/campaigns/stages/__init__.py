"""The campaign's stages. Each stage is a module of this package named after it, with ``plan``
(read the store, name the stage's items, a key each) and ``compute`` (do one item's work outside
any transaction and return a ``Writer`` that stores the result).

A stage is planned once the stages it ``needs`` have finished, not every stage before it: the
test prompts and the ablations need only the attributed heads, so the gpu queue runs them while
the llm queue explains. ``STAGES`` lists the stages in an order where each comes after its needs.

The caller runs the writer in the same transaction that marks the item done, so a result is
written exactly once even when a task is delivered twice. Step numbers are docs/method.md's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from services.campaigns.records import StageItem, Writer
from services.campaigns.stages import (
    ablate,
    agent,
    attribute,
    classify,
    explain,
    llm_batch,
    neurons,
    scan,
    score,
    test_prompts,
    truncate,
)
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign

Queue = Literal["gpu", "llm"]


@dataclass(frozen=True)
class Stage:
    name: str
    queue: Queue
    needs: tuple[str, ...]  # earlier stages whose items must all have finished before it is planned
    plan: Callable[[Session, Campaign], list[str]]
    compute: Callable[[Runtime, Store, StageItem], Writer]
    # A repeating stage plans again whenever its items have all finished, until its plan has
    # nothing new (the agent's rounds); ``queue_of`` routes each of its items by key.
    repeats: bool = False
    queue_of: Callable[[str], Queue] | None = None
    # Campaign-wide figures this stage adds to the summary once the campaign completes.
    summarize: Callable[[Session, str], None] | None = None
    # Its one item reads every result of the stages before it at once: when ``resume`` re-opens
    # an earlier stage (to retry failed items), this item runs again, so later results reach it.
    reads_all: bool = False
    # Ids of the campaign's failed items of this stage whose failure the stage already accounted
    # for (the agent's ``final`` ends a head's loop on a failure): they neither make a campaign
    # ``completed_with_failures`` nor are retried by ``resume``.
    absorbed: Callable[[Session, str], set[int]] | None = None

    def item_queue(self, key: str) -> Queue:
        return self.queue_of(key) if self.queue_of else self.queue


STAGES: list[Stage] = [
    Stage("neurons", "gpu", (), neurons.plan, neurons.compute),  # step 1
    Stage("scan", "gpu", ("neurons",), scan.plan, scan.compute),  # step 2
    Stage("truncate", "gpu", ("scan",), truncate.plan, truncate.compute),  # step 3
    Stage("attribute", "gpu", ("truncate",), attribute.plan, attribute.compute),  # step 4
    Stage("test_prompts", "gpu", ("attribute",), test_prompts.plan, test_prompts.compute,
          reads_all=True),  # step 6
    Stage("ablate", "gpu", ("attribute",), ablate.plan, ablate.compute, summarize=ablate.summarize),  # step 9
    Stage("explain_batch", "llm", ("attribute",), llm_batch.plan_explain, llm_batch.compute_explain,
          reads_all=True),  # step 5, batch mode: one provider batch answers the explain stage
    Stage("explain", "llm", ("explain_batch",), explain.plan, explain.compute),  # step 5
    Stage("agent", "llm", ("explain",), agent.plan, agent.compute, repeats=True, queue_of=agent.queue_of,
          absorbed=agent.absorbed),  # step 5, closed loop
    Stage("classify_batch", "llm", ("test_prompts", "explain", "agent"), llm_batch.plan_classify,
          llm_batch.compute_classify, reads_all=True),  # step 7, batch mode
    Stage("classify", "llm", ("classify_batch",), classify.plan, classify.compute),  # step 7
    Stage("score", "llm", ("classify",), score.plan, score.compute, reads_all=True),  # step 8
]
STAGE_NAMES = [stage.name for stage in STAGES]
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}
