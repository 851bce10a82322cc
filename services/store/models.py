"""The results store schema: campaigns, their work items, and every result they produce.

Each result row is keyed so that writing it twice is impossible (unique constraints), which is
what makes redelivered tasks harmless. Nested results are stored as the JSON of their pydantic
model (``payload``, a ``PydanticJSON`` column: the row loads the model), with the columns the API
filters or aggregates on pulled out beside it. A status column takes only its enum's values
(``services.store.statuses``): a CHECK constraint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lookups import AgentRound, HeadClassification, HeadScore
from services.ablation import HeadAblation
from services.attribution import NeuronAttribution
from services.campaigns.config import CampaignConfig
from services.explain import Explanation
from services.held_out import HeadTestSet
from services.schemas import ItemProgress, TruncatedPrompt
from services.store.pydantic_json import PydanticJSON
from services.store.statuses import CampaignStatus, ItemStatus, JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def status_check(table: str, statuses: type[StrEnum]) -> CheckConstraint:
    """``ck_<table>_status``: the table's ``status`` holds one of the enum's values."""
    allowed = ", ".join(f"'{status.value}'" for status in statuses)
    return CheckConstraint(f"status IN ({allowed})", name=f"ck_{table}_status")


class Base(DeclarativeBase):
    pass


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (status_check("campaigns", CampaignStatus),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), index=True)  # a CampaignStatus
    stage: Mapped[str | None] = mapped_column(String(32))
    config: Mapped[CampaignConfig] = mapped_column(PydanticJSON(CampaignConfig))
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)  # model, corpus splits, templates, backends
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The API principal that submitted it; NULL (CLI, or stored before owners): admins only.
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # What its LLM calls cost (failed items' calls too) and the worst case of calls in flight:
    # the budget's ledger, shared by every process (services.campaigns.budget).
    llm_spent_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    llm_reserved_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class WorkItem(Base):
    """One unit of work of one stage. The queue carries only this row's id."""

    __tablename__ = "work_items"
    __table_args__ = (UniqueConstraint("campaign_id", "stage", "key"), status_check("work_items", ItemStatus))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)  # an ItemStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # A long item's progress inside it.
    progress: Mapped[ItemProgress | None] = mapped_column(PydanticJSON(ItemProgress), nullable=True)


class NeuronRow(Base):
    __tablename__ = "neurons"
    __table_args__ = (UniqueConstraint("campaign_id", "layer", "neuron"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    layer: Mapped[int] = mapped_column(Integer)
    neuron: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(200))
    token_id: Mapped[int] = mapped_column(Integer)
    congruence: Mapped[float] = mapped_column(Float)


class ContextRow(Base):
    """A top document of a neuron (step 2) and, once truncated, its prompt (step 3)."""

    __tablename__ = "contexts"
    __table_args__ = (UniqueConstraint("campaign_id", "split", "layer", "neuron", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(8))
    layer: Mapped[int] = mapped_column(Integer)
    neuron: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer)
    doc_id: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    activation: Mapped[float] = mapped_column(Float)


class PromptRow(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("campaign_id", "split", "layer", "neuron", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(8))
    layer: Mapped[int] = mapped_column(Integer)
    neuron: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer)
    payload: Mapped[TruncatedPrompt] = mapped_column(PydanticJSON(TruncatedPrompt))


class AttributionRow(Base):
    """Head attribution of a neuron's train prompts (steps 5-6)."""

    __tablename__ = "head_attributions"
    __table_args__ = (UniqueConstraint("campaign_id", "layer", "neuron"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    layer: Mapped[int] = mapped_column(Integer)
    neuron: Mapped[int] = mapped_column(Integer)
    definition: Mapped[str] = mapped_column(String(16))
    payload: Mapped[NeuronAttribution] = mapped_column(PydanticJSON(NeuronAttribution))


class HeadRow(Base):
    """A (neuron, head) pair worth explaining."""

    __tablename__ = "heads"
    __table_args__ = (UniqueConstraint("campaign_id", "layer", "neuron", "head_layer", "head"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    layer: Mapped[int] = mapped_column(Integer)
    neuron: Mapped[int] = mapped_column(Integer)
    head_layer: Mapped[int] = mapped_column(Integer)
    head: Mapped[int] = mapped_column(Integer)
    active_fraction: Mapped[float] = mapped_column(Float)

    @property
    def key(self) -> str:
        return f"{self.layer}:{self.neuron}/{self.head_layer}.{self.head}"


class ExplanationRow(Base):
    __tablename__ = "explanations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    head_id: Mapped[int] = mapped_column(ForeignKey("heads.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    payload: Mapped[Explanation] = mapped_column(PydanticJSON(Explanation))  # template, backend, call...


class AgentRoundRow(Base):
    """One round of the explanation agent for a head (explanation, probes, then their
    measurements and the round's evaluation). Tokens and cost cover the round's explainer call
    and the judge calls that evaluated it."""

    __tablename__ = "agent_rounds"
    __table_args__ = (UniqueConstraint("head_id", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    head_id: Mapped[int] = mapped_column(ForeignKey("heads.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    payload: Mapped[AgentRound] = mapped_column(PydanticJSON(AgentRound))


class TestSetRow(Base):
    """Held-out test prompts of a head with their labels (step 6)."""

    __tablename__ = "test_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    head_id: Mapped[int] = mapped_column(ForeignKey("heads.id", ondelete="CASCADE"), unique=True)
    one_class: Mapped[bool] = mapped_column(Boolean)
    payload: Mapped[HeadTestSet] = mapped_column(PydanticJSON(HeadTestSet))


class ClassificationRow(Base):
    """A scorer's classification of a head's test prompts (step 7). ``control``: classified with
    another head's explanation (the shuffled-explanation control)."""

    __tablename__ = "classifications"
    __table_args__ = (UniqueConstraint("head_id", "scorer", "control", name="uq_classifications_head_scorer_control"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    head_id: Mapped[int] = mapped_column(ForeignKey("heads.id", ondelete="CASCADE"))
    scorer: Mapped[str] = mapped_column(String(32), server_default="zero-shot")
    control: Mapped[bool] = mapped_column(Boolean)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    payload: Mapped[HeadClassification] = mapped_column(PydanticJSON(HeadClassification))


class ScoreRow(Base):
    """A scorer's head explanation score (step 8)."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("head_id", "scorer", "control", name="uq_scores_head_scorer_control"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    head_id: Mapped[int] = mapped_column(ForeignKey("heads.id", ondelete="CASCADE"))
    scorer: Mapped[str] = mapped_column(String(32), server_default="zero-shot")
    control: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    payload: Mapped[HeadScore] = mapped_column(PydanticJSON(HeadScore))


class AblationRow(Base):
    """Ablation check of a head (step 9)."""

    __tablename__ = "ablations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    head_id: Mapped[int] = mapped_column(ForeignKey("heads.id", ondelete="CASCADE"), unique=True)
    payload: Mapped[HeadAblation] = mapped_column(PydanticJSON(HeadAblation))


class JobRow(Base):
    """A single job submitted over the API (scan, attribute, explain or classify one thing):
    its request and result are the JSON of services.jobs models."""

    __tablename__ = "jobs"
    __table_args__ = (status_check("jobs", JobStatus),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)  # a JobStatus
    request: Mapped[dict] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # as Campaign.owner
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
