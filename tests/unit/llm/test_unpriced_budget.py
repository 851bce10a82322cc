"""A budget cannot cap a model it has no price for: such a client or campaign is refused before
any call, naming the model and how to price it; a price from the campaign makes it go."""

from __future__ import annotations

import pytest
from llm_ledger import ledger_rows

from lookups import InvalidInputError
from services.campaigns.config import CampaignConfig
from services.llm.budget import LocalBudget
from services.llm.client import LLMClient
from services.llm.registry import create_backend, unpriced_model
from services.runtime import Runtime


def test_a_budgeted_client_on_an_unpriced_model_is_refused_before_any_call(settings, fake_server):
    backend = create_backend(f"openai-compatible:{fake_server.url}:mystery-model")
    with pytest.raises(InvalidInputError, match="'mystery-model' has no price.*LOOKUPS_LLM_PRICES"):
        LLMClient(backend, settings=settings, budget=LocalBudget(1.0))
    assert fake_server.requests == []
    LLMClient(backend, settings=settings)  # no budget: nothing to cap, nothing refused


def test_a_price_from_the_campaign_lets_the_budget_cap_it(settings, fake_server):
    runtime = Runtime(settings)
    spec = f"openai-compatible:{fake_server.url}:mystery-model"
    client = runtime.llm(spec, LocalBudget(1.0), {"mystery-model": (1000.0, 1000.0)})
    client.call(client_request())
    (record,) = ledger_rows(client.store)
    assert record.cost_usd > 0  # priced, so the budget sees what it spends
    with pytest.raises(InvalidInputError):
        runtime.llm(spec, LocalBudget(1.0))  # the campaign's price is not a process-wide one


def test_local_models_need_no_price():
    assert unpriced_model("local", {}) is None


def test_a_budgeted_campaign_names_the_unpriced_model_and_the_fix(settings, fake_server):
    spec = f"openai-compatible:{fake_server.url}:mystery-model"
    with pytest.raises(ValueError, match="classifier model 'mystery-model' has no price.*--price"):
        CampaignConfig(corpus="c.jsonl", classifier=spec, budget_usd=2.0)
    CampaignConfig(corpus="c.jsonl", classifier=spec, budget_usd=2.0, llm_prices={"mystery-model": (1.0, 2.0)})
    CampaignConfig(corpus="c.jsonl", classifier=spec)  # no budget, no price needed


def client_request():
    from lookups import LLMRequest

    return LLMRequest(prompt="Is this priced?", max_tokens=2)
