"""A campaign's budget is one ledger in the results store: processes reserving against it at the
same moment never together pass the cap, on SQLite and on PostgreSQL. A 0006 store's campaigns
start with what their stored results cost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import text

from tests.integration.conftest import REPO
from tests.integration.test_store_migrations import migrate_to

CAP, WORST, ACTUAL = 1.0, 0.07, 0.05

# One process: reserve the worst case, "call" (sleep), settle with the billed cost, until refused.
SPEND = """
import json, random, sys, time
from lookups import BudgetExceededError
from services.campaigns.budget import CampaignBudget
from services.store import Store
store = Store(sys.argv[1], migrate=False)
budget = CampaignBudget(store, "c", float(sys.argv[2]))
billed = refused = 0
while refused < 3:
    try:
        budget.reserve(float(sys.argv[3]))
    except BudgetExceededError:
        refused += 1
        time.sleep(0.02)
        continue
    time.sleep(random.uniform(0.0, 0.03))
    budget.settle(float(sys.argv[3]), float(sys.argv[4]))
    billed += 1
print(json.dumps({"billed": billed}))
"""


def test_four_processes_reserving_at_once_never_pass_the_cap(any_store_url):
    from services.campaigns.config import CampaignConfig
    from services.store import Store
    from services.store.models import Campaign

    store = Store(any_store_url)
    with store.session() as session:
        session.add(Campaign(id="c", name="n", status="running", config=CampaignConfig(corpus="unused"),
                             provenance={}))
    spenders = [subprocess.Popen([sys.executable, "-c", SPEND, any_store_url, str(CAP), str(WORST), str(ACTUAL)],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    outputs = [p.communicate(timeout=180) for p in spenders]
    assert all(p.returncode == 0 for p in spenders), [err[-1500:] for _, err in outputs]
    billed = sum(json.loads(out)["billed"] for out, _ in outputs)

    with store.session() as session:
        campaign = session.get_one(Campaign, "c")
        spent, reserved = campaign.llm_spent_usd, campaign.llm_reserved_usd
    store.dispose()
    assert billed * ACTUAL == pytest.approx(spent)
    assert reserved == pytest.approx(0.0, abs=1e-9)
    # Reservations hold the worst case: every call fit in CAP with WORST held for each one in flight.
    assert spent <= CAP
    assert spent > CAP - 4 * WORST  # and used: a refusal means the others held at most 3 x WORST


def test_a_0006_store_starts_each_campaign_with_what_its_results_cost(any_store_url):
    from services.store import Store

    migrate_to(any_store_url, "0006")
    old = Store(any_store_url, migrate=False)
    with old.engine.begin() as connection:
        for campaign in ("c", "d"):
            connection.execute(text(
                "INSERT INTO campaigns (id, name, status, config, provenance, created_at, updated_at) "
                f"VALUES ('{campaign}', 'n', 'running', '{{}}', '{{}}', '2026-01-01', '2026-01-01')"))
        connection.execute(text("INSERT INTO heads (id, campaign_id, layer, neuron, head_layer, head, "
                                "active_fraction) VALUES (1, 'c', 3, 5, 1, 2, 0.5)"))
        connection.execute(text("INSERT INTO explanations (campaign_id, head_id, text, input_tokens, output_tokens, "
                                "cost_usd, payload) VALUES ('c', 1, 'e', 10, 5, 0.25, '{}')"))
        connection.execute(text("INSERT INTO classifications (campaign_id, head_id, scorer, control, "
                                "input_tokens, output_tokens, cost_usd, payload) "
                                "VALUES ('c', 1, 'zero-shot', false, 10, 1, 0.5, '{}')"))
    old.dispose()

    store = Store(any_store_url)  # upgrades to head
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, llm_spent_usd, llm_reserved_usd FROM campaigns ORDER BY id")).all()
    store.dispose()
    assert [row.id for row in rows] == ["c", "d"]
    assert rows[0].llm_spent_usd == pytest.approx(0.75) and rows[1].llm_spent_usd == 0.0
    assert all(row.llm_reserved_usd == 0.0 for row in rows)
