"""A campaign's records in the results store, read the way every stage needs them, and the
two types a stage's ``compute`` deals in (``StageItem`` in, ``Writer`` out)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lookups import ExplainRequest, HeadExample
from services.activity import head_labels
from services.attribution import HeadRef, NeuronAttribution
from services.campaigns.config import CampaignConfig
from services.store.models import (
    AgentRoundRow,
    AttributionRow,
    Campaign,
    ClassificationRow,
    ExplanationRow,
    HeadRow,
    NeuronRow,
)

Writer = Callable[[Session], None]
# Tables whose rows carry LLM tokens and cost.
LLM_TABLES = (ExplanationRow, ClassificationRow, AgentRoundRow)


@dataclass(frozen=True)
class StageItem:
    """What ``compute`` gets: the campaign's id and config, and the item's key."""

    campaign_id: str
    config: CampaignConfig
    key: str


def neuron_key(layer: int, neuron: int) -> str:
    return f"{layer}:{neuron}"


def campaign_neurons(session: Session, campaign_id: str) -> list[NeuronRow]:
    return list(session.scalars(
        select(NeuronRow).where(NeuronRow.campaign_id == campaign_id).order_by(NeuronRow.id)))


def campaign_heads(session: Session, campaign_id: str) -> list[HeadRow]:
    return list(session.scalars(
        select(HeadRow).where(HeadRow.campaign_id == campaign_id).order_by(HeadRow.id)))


def head_by_key(session: Session, campaign_id: str, key: str) -> HeadRow:
    """The head ``LAYER:NEURON/HEAD_LAYER.HEAD``, looked up by its columns (one row, not all)."""
    neuron, _, head = key.partition("/")
    layer, index = (int(x) for x in neuron.split(":"))
    head_layer, head_index = (int(x) for x in head.split("."))
    return session.scalars(select(HeadRow).where(
        HeadRow.campaign_id == campaign_id, HeadRow.layer == layer, HeadRow.neuron == index,
        HeadRow.head_layer == head_layer, HeadRow.head == head_index)).one()


# Parsed attribution rows by (database, row id, campaign, neuron): a row is written once, with
# its item, and never changed, and parsing a neuron's payload (every prompt's head scores and
# reads) was half of an explain item's time, once per head.
_attributions: dict[tuple[str, int, str, int, int], NeuronAttribution] = {}
_attributions_lock = threading.Lock()
ATTRIBUTIONS_KEPT = 256


def neuron_attribution(session: Session, campaign_id: str, layer: int, neuron: int) -> NeuronAttribution:
    """A neuron's attribution, parsed once per process; callers must not change it."""
    row_id = session.scalars(select(AttributionRow.id).where(
        AttributionRow.campaign_id == campaign_id, AttributionRow.layer == layer,
        AttributionRow.neuron == neuron)).one()
    key = (str(session.get_bind().engine.url), row_id, campaign_id, layer, neuron)
    with _attributions_lock:
        found = _attributions.get(key)
    if found is None:
        found = session.get_one(AttributionRow, row_id).payload
        with _attributions_lock:
            if len(_attributions) >= ATTRIBUTIONS_KEPT:
                _attributions.clear()
            _attributions[key] = found
    return found


def campaign_cost(session: Session, campaign_id: str) -> float:
    """What the result rows' LLM calls cost, plus batch mode's provider batches (provenance
    ``llm_batches``), whose answers the rows then read from the cache at no cost."""
    batches = (session.get_one(Campaign, campaign_id).provenance or {}).get("llm_batches", {})
    total = sum(batch["cost_usd"] for batch in batches.values())
    for table in LLM_TABLES:
        total += session.scalars(
            select(func.coalesce(func.sum(table.cost_usd), 0.0)).where(table.campaign_id == campaign_id)).one()
    return total


def set_provenance(session: Session, campaign_id: str, **entries) -> None:
    campaign = session.get_one(Campaign, campaign_id)
    campaign.provenance = {**(campaign.provenance or {}), **entries}


def stored_token(session: Session, campaign_id: str, layer: int, neuron: int) -> str:
    return session.scalars(select(NeuronRow.token).where(
        NeuronRow.campaign_id == campaign_id, NeuronRow.layer == layer, NeuronRow.neuron == neuron)).one()


def train_labels(session: Session, campaign_id: str, head: HeadRow, config: CampaignConfig) -> list[bool]:
    """Whether the head is active on each of its neuron's training prompts, by the campaign's
    activity definition: what the explainer is shown, and what the probe learns from."""
    attribution = neuron_attribution(session, campaign_id, head.layer, head.neuron)
    return head_labels(attribution, HeadRef(layer=head.head_layer, head=head.head), config.activity)


def explain_request_for(session: Session, campaign_id: str, head: HeadRow, config: CampaignConfig):
    """The explain request of one head: its neuron's prompts split by the head's activity, each
    with the head's attribution and reads. The stage and ``lookups estimate`` both build
    requests here, so they never differ."""

    ref = HeadRef(layer=head.head_layer, head=head.head)
    attribution = neuron_attribution(session, campaign_id, head.layer, head.neuron)
    labels = train_labels(session, campaign_id, head, config)
    examples = None
    if attribution.reads is not None:
        examples = [HeadExample(text=p.text, active=active,
                                attribution=p.scores[ref.layer][ref.head],
                                pieces=r.pieces, reads=r.heads[str(ref)])
                    for p, r, active in zip(attribution.prompts, attribution.reads, labels)]
    return ExplainRequest(
        neuron=neuron_key(head.layer, head.neuron), head=str(ref),
        token=stored_token(session, campaign_id, head.layer, head.neuron),
        active_examples=[p.text for p, active in zip(attribution.prompts, labels) if active],
        inactive_examples=[p.text for p, active in zip(attribution.prompts, labels) if not active],
        examples=examples,
    )
