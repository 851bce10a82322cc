"""A campaign budget under real Celery llm workers: four worker processes of two threads each,
against the loopback fake OpenAI server answering in 0.2 s, run three budgeted campaigns at once
(three repetitions, each its own priced model). Each campaign's spending, from the LLM ledger,
stays within its budget; the items the budget refused failed saying so, and the campaign's own
ledger column agrees with the LLM ledger."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_worker_stack import FAST_RECOVERY, FakeOpenAI, wait_until

from services.campaigns.lifecycle import create_campaign
from services.campaigns.status_view import progress
from services.llm.store import LLMStore
from services.store import Store
from services.store.models import Campaign, WorkItem
from tests.conftest import tiny_campaign
from tests.unit.llm.llm_ledger import ledger_rows

pytestmark = pytest.mark.timeout(400)

# USD per million tokens in, out. A tiny campaign explains two heads (~$0.13 each, worst case
# ~$0.28: 255 prompt tokens estimated, 200 out) and judges them in 12 calls (~$0.02, worst ~$0.05):
# about $0.38 in all, so a $0.45 budget refuses some calls at their worst case.
PRICE = (1000.0, 100.0)
BUDGET_USD = 0.45
REPETITIONS = 3


def test_four_llm_workers_never_pass_a_campaign_budget(processes, tiny_gpt2_dir, corpus_path):
    env = processes.env
    models = [f"fake-budget-{i}" for i in range(REPETITIONS)]
    env.update(FAST_RECOVERY)
    store = Store(env["LOOKUPS_RESULTS_URL"])
    with FakeOpenAI() as fake:
        fake.respond = lambda prompt: "Yes" if "Answer:" in prompt else "Active on lists of names."
        fake.refuse = lambda prompt: ("sleep", 0.2)  # every call takes 0.2 s, so they overlap
        processes.start("orchestrate", name="orchestrator")
        processes.start("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "gpu@%h", name="gpu")
        for i in range(4):
            processes.start("worker", "--queues", "llm", "--concurrency", "2", "--hostname", f"llm{i}@%h",
                            name=f"llm{i}")
        ids = {model: create_campaign(store, tiny_campaign(
            tiny_gpt2_dir, corpus_path, f"openai-compatible:{fake.url}:{model}", budget_usd=BUDGET_USD,
            llm_prices={model: PRICE}, ablation=False)) for model in models}
        for campaign_id in ids.values():
            wait_until(lambda c=campaign_id: progress(store, c).status not in ("pending", "running"), 300,
                       f"campaign {campaign_id} to finish", processes)

    ledger = ledger_rows(LLMStore(env["LOOKUPS_LLM_DB_URL"]))
    assert any(r.cost_usd > 0 for r in ledger)  # the budgets let calls through, not only refused them
    for model, campaign_id in ids.items():
        spent = sum(r.cost_usd for r in ledger if r.model == model)
        with store.session() as session:
            campaign = session.get_one(Campaign, campaign_id)
            errors = [e for e in session.scalars(select(WorkItem.error).where(
                WorkItem.campaign_id == campaign_id, WorkItem.status == "failed"))]
        assert spent <= BUDGET_USD, (model, spent, errors[:3])
        assert campaign.llm_spent_usd == pytest.approx(spent)
        assert errors and all(f"budget cap ${BUDGET_USD:.4f} reached" in e for e in errors), errors[:3]
    store.dispose()
