"""Batch mode end to end: a tiny campaign whose explanations come from one OpenAI batch and whose
judgements come from one Anthropic Message Batch (a loopback fake of both), with no live call;
a ``lookups run`` killed while it polls, resumed on the same batch with every result written
once; an expired batch failing the campaign with the provider's reason until a resume.

Real store, real tiny model, real ``openai`` and ``anthropic`` SDKs over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_batches import FakeBatches  # noqa: E402
from fake_openai import TEST_KEY as KEY  # noqa: E402
from llm_ledger import ledger_rows  # noqa: E402

from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.execute import run_in_process  # noqa: E402
from services.campaigns.lifecycle import create_campaign, resume  # noqa: E402
from services.llm.store import LLMStore  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from services.settings import get_settings  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import Campaign, ClassificationRow, ExplanationRow, HeadRow, WorkItem  # noqa: E402
from tests.conftest import tiny_campaign  # noqa: E402

pytestmark = pytest.mark.slow  # whole campaigns, one of them in `lookups` subprocesses

PRICE = [1000.0, 2000.0]


def answer(prompt: str) -> str:
    """The judge says Yes; each head's explanation is its own."""
    return "Yes" if "Answer:" in prompt else f"It is active on lists of kind {zlib.crc32(prompt.encode())}."


@pytest.fixture
def fake():
    with FakeBatches() as server:
        server.respond = answer
        yield server


@pytest.fixture
def env(fake, tmp_path, monkeypatch) -> dict[str, str]:
    """Both providers at the fake, priced, polled every 20 ms; stores of this test's own."""
    values = {"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY, "OPENAI_BASE_URL": fake.url,
              "ANTHROPIC_BASE_URL": fake.root, "LOOKUPS_LLM_BATCH_POLL_S": "0.02",
              "LOOKUPS_LLM_PRICES": json.dumps({"fake-gpt": PRICE, "fake-claude": PRICE}),
              "LOOKUPS_LLM_DB_URL": f"sqlite:///{tmp_path / 'llm.sqlite'}",
              "LOOKUPS_RESULTS_URL": f"sqlite:///{tmp_path / 'results.sqlite'}",
              "LOOKUPS_CACHE_DIR": str(tmp_path / "cache"), "LOOKUPS_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def batch_config(tiny_gpt2_dir, corpus_path) -> CampaignConfig:
    return CampaignConfig.model_validate({
        **tiny_campaign(tiny_gpt2_dir, corpus_path, "openai:fake-gpt", ablation=False).model_dump(),
        "classifier": "anthropic:fake-claude", "llm_mode": "batch"})


def check_written_once(store: Store, campaign_id: str) -> None:
    """Every head explained once, every classify item's row once, one answered ledger row per
    distinct request, each at the batch price (rows of requests a batch failed cost nothing)."""
    settings = get_settings()
    with store.session() as session:
        heads = session.scalar(select(func.count()).select_from(HeadRow).where(HeadRow.campaign_id == campaign_id))
        explained = session.scalars(select(ExplanationRow.head_id)
                                    .where(ExplanationRow.campaign_id == campaign_id)).all()
        classified = session.scalar(select(func.count()).select_from(ClassificationRow)
                                    .where(ClassificationRow.campaign_id == campaign_id))
        classify_items = session.scalar(select(func.count()).select_from(WorkItem).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == "classify"))
    assert heads >= 2 and sorted(explained) == sorted(set(explained)) and len(explained) == heads
    assert classified == classify_items > 0
    ledger = ledger_rows(LLMStore(settings.llm_db_url))
    assert all(row.cost_usd == 0 for row in ledger if row.error is not None)
    billed = [row for row in ledger if not row.cache_hit and row.error is None]
    assert len(billed) == len({row.cache_key for row in billed}), "a request answered twice"
    for row in billed:
        assert row.cost_usd == pytest.approx(0.5 * (row.input_tokens * PRICE[0] + row.output_tokens * PRICE[1]) / 1e6)


def test_a_batch_campaign_gets_every_answer_from_one_batch_per_stage(env, fake, tiny_gpt2_dir, corpus_path):
    store = Store(env["LOOKUPS_RESULTS_URL"])
    campaign_id = create_campaign(store, batch_config(tiny_gpt2_dir, corpus_path))
    final = run_in_process(store, campaign_id, Runtime(get_settings()))

    assert final.status == "completed", final
    assert [c["provider"] for c in fake.created] == ["openai", "anthropic"]
    assert fake.live == []
    check_written_once(store, campaign_id)
    with store.session() as session:
        batches = session.get_one(Campaign, campaign_id).provenance["llm_batches"]
    assert {batch_id: b["stage"] for batch_id, b in batches.items()} == {
        fake.created[0]["id"]: "explain", fake.created[1]["id"]: "classify"}
    assert all(b["answered"] == b["requests"] and b["cost_usd"] > 0 for b in batches.values())
    billed = sum(row.cost_usd for row in ledger_rows(LLMStore(env["LOOKUPS_LLM_DB_URL"])))
    assert final.cost_usd == pytest.approx(billed) and billed > 0  # the campaign's cost is the batches'


def test_lookups_run_killed_mid_poll_resumes_on_the_same_batch(env, fake, tiny_gpt2_dir, corpus_path, tmp_path):
    config = tmp_path / "campaign.json"
    config.write_text(batch_config(tiny_gpt2_dir, corpus_path).model_dump_json())
    fake.hold = True
    log = tmp_path / "first-run.log"
    with log.open("w") as out:
        running = subprocess.Popen([sys.executable, "-m", "api", "run", "-c", str(config)], env={**os.environ},
                                   stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 240
        while len(fake.polls) < 3:
            assert running.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the explain batch was never polled"
            time.sleep(0.05)
    finally:
        running.send_signal(signal.SIGKILL)
        running.wait()
    first = fake.created[0]["id"]
    fake.hold = False
    polled = len(fake.polls)
    resumed = subprocess.run([sys.executable, "-m", "api", "run", "--resume", "latest"], env={**os.environ},
                             capture_output=True, text=True, timeout=300)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [c["provider"] for c in fake.created] == ["openai", "anthropic"], "a batch submitted twice"
    assert fake.polls[polled] == first
    assert fake.live == []
    store = Store(env["LOOKUPS_RESULTS_URL"])
    check_written_once(store, resumed.stdout.strip().splitlines()[-1])


def test_an_expired_batch_fails_the_campaign_with_the_reason_until_a_resume(env, fake, tiny_gpt2_dir, corpus_path):
    reason = "the batch could not be completed within the 24h time window"
    fake.outcome = ("expired", reason)
    store = Store(env["LOOKUPS_RESULTS_URL"])
    campaign_id = create_campaign(store, batch_config(tiny_gpt2_dir, corpus_path))
    runtime = Runtime(get_settings())
    failed = run_in_process(store, campaign_id, runtime)

    assert failed.status == "failed" and reason in failed.error and "explain_batch" in failed.error
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(ExplanationRow)) == 0

    fake.outcome = None
    resume(store, campaign_id)
    final = run_in_process(store, campaign_id, runtime)

    assert final.status == "completed", final
    assert [c["provider"] for c in fake.created] == ["openai", "openai", "anthropic"]
    check_written_once(store, campaign_id)

