"""Stage ``explain`` (docs/method.md step 5): one explanation per head worth explaining, by the
campaign's explainer strategy; a closed-loop strategy explains in the ``agent`` stage instead."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.campaigns.budget import campaign_budget
from services.campaigns.records import (
    StageItem,
    Writer,
    campaign_heads,
    explain_request_for,
    head_by_key,
)
from services.llm.batch import require_answered
from services.llm.registry import get_strategy, get_template
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign, ExplanationRow
from services.work import ExplainWork, explain_head


def plan(session: Session, campaign: Campaign) -> list[str]:
    if get_strategy(campaign.config.explainer_strategy).closed_loop:
        return []
    return [h.key for h in campaign_heads(session, campaign.id)]


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    config = item.config
    with store.session() as session:
        head = head_by_key(session, item.campaign_id, item.key)
        head_id, request = head.id, explain_request_for(session, item.campaign_id, head, config)
    if config.llm_mode == "batch":  # answered by the explain_batch stage's provider batch
        require_answered(runtime.llm(config.explainer, None, config.llm_prices), [
            get_strategy(config.explainer_strategy).request(get_template(config.explainer_template), request)])
    explanation = explain_head(runtime, ExplainWork(
        backend=config.explainer, template=config.explainer_template, strategy=config.explainer_strategy,
        request=request, llm_prices=config.llm_prices, samples=config.explainer_samples,
        temperature=config.explainer_temperature), campaign_budget(store, item))
    calls = explanation.calls or [explanation.call]

    def write(session: Session) -> None:
        session.add(ExplanationRow(
            campaign_id=item.campaign_id, head_id=head_id, text=explanation.text,
            input_tokens=sum(c.input_tokens for c in calls), output_tokens=sum(c.output_tokens for c in calls),
            cost_usd=sum(c.cost_usd for c in calls), payload=explanation))

    return write
