"""Stages ``explain_batch`` and ``classify_batch`` (batch mode only, ``llm_mode = "batch"``): one
item each, just before ``explain`` and ``classify``, that sends every request the next stage will
make as one provider batch and waits for it (``services.llm.batch``). The next stage's items then
find their answers in the LLM cache; they make no live call.

The requests are built exactly as the next stage builds them, so their cache keys match. A
batch's cost at the batch price goes to the campaign's budget when it is collected; the batches
that answered a stage are listed in the campaign's provenance (``llm_batches``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from lookups import LLMRequest
from services.campaigns.budget import campaign_budget
from services.campaigns.config import CampaignConfig
from services.campaigns.records import (
    StageItem,
    Writer,
    campaign_heads,
    explain_request_for,
    set_provenance,
)
from services.campaigns.stages import classify, explain
from services.llm.batch import run_batch
from services.llm.registry import get_scorer, get_strategy, get_template
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign

KEY = "batch"


def explain_requests(session: Session, campaign_id: str, config: CampaignConfig) -> list[LLMRequest]:
    """Every request the explain stage makes, one per head."""
    strategy, template = get_strategy(config.explainer_strategy), get_template(config.explainer_template)
    return [strategy.request(template, explain_request_for(session, campaign_id, head, config))
            for head in campaign_heads(session, campaign_id)]


def classify_requests(session: Session, campaign: Campaign) -> list[LLMRequest]:
    """Every request the classify stage makes (every scorer, the shuffled control included)."""
    config = campaign.config
    template = get_template(config.classifier_template)
    requests: list[LLMRequest] = []
    for key in classify.plan(session, campaign):
        _, scorer, _, request = classify.classify_request_for(session, campaign.id, key, config)
        requests += get_scorer(scorer).requests(template, request)
    return requests


def plan_explain(session: Session, campaign: Campaign) -> list[str]:
    batch = campaign.config.llm_mode == "batch"
    return [KEY] if batch and explain.plan(session, campaign) else []


def plan_classify(session: Session, campaign: Campaign) -> list[str]:
    batch = campaign.config.llm_mode == "batch"
    return [KEY] if batch and classify.plan(session, campaign) else []


def compute_explain(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    with store.session() as session:
        requests = explain_requests(session, item.campaign_id, item.config)
    return _batch(runtime, store, item, "explain", item.config.explainer, requests)


def compute_classify(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    with store.session() as session:
        requests = classify_requests(session, session.get_one(Campaign, item.campaign_id))
    return _batch(runtime, store, item, "classify", item.config.classifier, requests)


def _batch(runtime: Runtime, store: Store, item: StageItem, stage: str, spec: str,
           requests: list[LLMRequest]) -> Writer:
    client = runtime.llm(spec, campaign_budget(store, item), item.config.llm_prices)
    batches = run_batch(client, requests)

    def write(session: Session) -> None:
        recorded = dict(session.get_one(Campaign, item.campaign_id).provenance.get("llm_batches", {}))
        recorded |= {b.id: {"stage": stage, **b.model_dump(mode="json", exclude={"id"})} for b in batches}
        set_provenance(session, item.campaign_id, llm_batches=recorded)

    return write
