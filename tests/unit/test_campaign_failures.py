"""Failures in a campaign, in one process, no broker: a failed item is recorded and the stage
goes on, a transient error is tried again up to the cap, a locked LLM cache is waited out, and
resume retries what failed (an explanation, an earlier gpu stage) so that its results reach
every later stage; the CLI's exit status and the report list the failed items.

Real store (SQLite file), real tiny model, and the LLM stages against the loopback fake OpenAI
server, so nothing of ours is mocked.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import error  # noqa: E402

from lookups import InvalidInputError  # noqa: E402
from services.campaigns.execute import execute_item, run_in_process  # noqa: E402
from services.campaigns.lifecycle import (  # noqa: E402
    advance,
    create_campaign,
    resume,
)
from services.campaigns.records import head_by_key  # noqa: E402
from services.campaigns.status_view import progress  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import (  # noqa: E402
    AblationRow,
    Campaign,
    ExplanationRow,
    HeadRow,
    ScoreRow,
)
from services.store.models import TestSetRow as HeldOutRow  # noqa: E402  (not a test class)
from tests.unit.campaign_helpers import STAGE_NAMES, count, fast_retries, items, refuse_once  # noqa: E402


@pytest.mark.slow  # runs a whole campaign in-process
def test_a_failed_item_is_recorded_and_the_stage_goes_on(store, config, runtime, fake_llm):
    """A refused prompt (400) is no transient error: its item fails at the first try, the other
    heads go on, and the campaign ends completed_with_failures, naming the item."""
    fake_llm.faults.append(error(400, "this prompt is refused"))  # the first explain call only
    campaign_id = create_campaign(store, config)
    final = run_in_process(store, campaign_id, runtime)

    assert final.status == "completed_with_failures"
    explain = next(s for s in final.stages if s.stage == "explain")
    assert explain.failed == 1 and explain.done == explain.total - 1 >= 1
    failed = [i for i in items(store, campaign_id, "explain") if i.status == "failed"]
    assert "this prompt is refused" in failed[0].error and failed[0].attempts == 1
    assert [(f.id, f.stage, f.key, f.attempts) for f in final.failures] == [(failed[0].id, "explain", failed[0].key, 1)]
    assert "this prompt is refused" in final.failures[0].error
    assert count(store, ExplanationRow, campaign_id) == count(store, HeadRow, campaign_id) - 1
    score = next(s for s in final.stages if s.stage == "score")
    assert score.done == 1



@pytest.mark.slow  # runs a whole campaign in-process
def test_a_transient_error_is_tried_again_not_failed(store, config, runtime, fake_llm, monkeypatch):
    """The LLM server answers 503 to the first explain call and the client has no retries
    left: the backend is unavailable (transient), so the item is tried again and succeeds."""
    fast_retries(monkeypatch, runtime)
    fake_llm.faults.append(error(503, "overloaded"))
    campaign_id = create_campaign(store, config)
    final = run_in_process(store, campaign_id, runtime)

    assert final.status == "completed" and final.failures == []
    assert all(s.failed == 0 and s.done == s.total for s in final.stages)
    explain = items(store, campaign_id, "explain")
    assert sorted(i.attempts for i in explain)[-1] == 2 and all(i.error is None for i in explain)
    assert count(store, ExplanationRow, campaign_id) == count(store, HeadRow, campaign_id)


@pytest.mark.slow  # runs a whole campaign in-process
def test_a_transient_error_at_every_try_fails_the_item_at_the_cap(store, config, runtime, fake_llm, monkeypatch):
    fast_retries(monkeypatch, runtime, attempts=3)
    fake_llm.faults.extend(error(503, "still overloaded") for _ in range(3))
    campaign_id = create_campaign(store, config)
    final = run_in_process(store, campaign_id, runtime)

    assert final.status == "completed_with_failures"
    (failed,) = [i for i in items(store, campaign_id, "explain") if i.status == "failed"]
    assert failed.attempts == 3 and "still overloaded" in failed.error and "last try" in failed.error
    assert not fake_llm.faults


@pytest.mark.slow  # runs a whole campaign in-process
def test_a_locked_llm_cache_is_waited_out(store, config, runtime, monkeypatch):
    """The crash run's kind of error: the LLM cache's database is busy in another process
    (here: an exclusive transaction held for 7 s) when an explain item opens it. With SQLite's
    default 5 s wait it gave up with 'database is locked' and the item needed a second try; the
    stores' one engine factory waits up to 30 s, so the first try gets through."""

    from services.llm.store import LLMStore

    fast_retries(monkeypatch, runtime)
    url = runtime.settings.llm_db_url
    LLMStore(url).engine.dispose()  # the cache exists (a campaign's first LLM call would create it)
    campaign_id = create_campaign(store, config)
    while True:  # run the GPU stages up to explain
        pending = advance(store, campaign_id)
        if items(store, campaign_id, "explain"):
            break
        for item_id in pending:
            assert execute_item(store, runtime, item_id) == "done"

    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(7, holder.rollback)
    release.start()
    try:
        final = run_in_process(store, campaign_id, runtime)
    finally:
        release.join()
        holder.close()

    assert final.status == "completed", final.failures
    first = items(store, campaign_id, "explain")[0]
    assert first.attempts == 1 and first.error is None
    assert count(store, ExplanationRow, campaign_id) == count(store, HeadRow, campaign_id)


@pytest.mark.slow  # runs a whole campaign in-process
def test_resume_retries_a_failed_explanation_and_it_flows_through(store, config, runtime, fake_llm):
    """completed_with_failures, then resume: the failed explain item runs again, classify plans
    the head it now explains, test prompts and scores run again, items done before stay done.
    (The tiny campaign has two heads; the second is the one with a two-class test set, so the
    one that can be classified and scored: its explanation is refused.)"""
    fake_llm.refuse = refuse_once(2)
    campaign_id = create_campaign(store, config)
    first = run_in_process(store, campaign_id, runtime)
    assert first.status == "completed_with_failures"
    (failed,) = first.failures
    heads = count(store, HeadRow, campaign_id)
    before = {(i.stage, i.key): (i.id, i.attempts) for s in STAGE_NAMES for i in items(store, campaign_id, s)}

    resume(store, campaign_id)
    with store.session() as session:
        assert session.get(Campaign, campaign_id).stage == "explain"
    final = run_in_process(store, campaign_id, runtime)

    assert final.status == "completed" and final.failures == []
    assert all(s.failed == 0 and s.done == s.total for s in final.stages)
    assert count(store, ExplanationRow, campaign_id) == heads
    assert count(store, HeldOutRow, campaign_id) == heads  # no test set twice
    after = {(i.stage, i.key): (i.id, i.attempts) for s in STAGE_NAMES for i in items(store, campaign_id, s)}
    assert {k: v[0] for k, v in before.items()} == {k: after[k][0] for k in before}  # the same rows
    rerun = {k for k in before if after[k][1] != before[k][1]}
    assert rerun == {("explain", failed.key), ("score", "all")}  # the test prompts did not need explanations
    added = set(after) - set(before)
    assert added and all(stage == "classify" and key.startswith(failed.key + "/") for stage, key in added)
    with store.session() as session:
        head = head_by_key(session, campaign_id, failed.key)
        score = session.scalar(select(ScoreRow.score).where(ScoreRow.head_id == head.id, ScoreRow.control.is_(False)))
        summary = session.get(Campaign, campaign_id).summary
    assert score is not None  # scored now; before the resume it was skipped (no classification)
    assert summary["explanations"]["n_scored"] >= 1 and summary["explanations"]["n_heads"] == heads
    with pytest.raises(InvalidInputError, match="completed"):
        resume(store, campaign_id)


@pytest.mark.slow  # runs a whole campaign in-process
def test_resume_reopens_an_earlier_gpu_stage_and_its_new_heads_reach_every_later_stage(
        store, config, runtime, monkeypatch):
    """One neuron's attribution fails (a fault injected once): its heads are missing from every
    later stage. Resume re-opens attribute; the neuron's heads are explained, tested,
    classified, scored and ablated, and the other neuron's results are kept as they were."""
    import services.campaigns.stages.attribute as attribute_stage

    real = attribute_stage.attribute
    broken = {"3:17"}

    def attribute_once(runtime_, work):
        if work.neuron in broken:
            broken.discard(work.neuron)
            raise RuntimeError("injected fault in attribution")
        return real(runtime_, work)

    monkeypatch.setattr(attribute_stage, "attribute", attribute_once)
    campaign_id = create_campaign(store, config)
    first = run_in_process(store, campaign_id, runtime)
    assert first.status == "completed_with_failures"
    assert [(f.stage, f.key) for f in first.failures] == [("attribute", "3:17")]
    with store.session() as session:
        kept_heads = list(session.scalars(select(HeadRow.id).where(HeadRow.campaign_id == campaign_id)))
        kept_explanations = dict(session.execute(select(ExplanationRow.head_id, ExplanationRow.id).where(
            ExplanationRow.campaign_id == campaign_id)).all())

    resume(store, campaign_id)
    final = run_in_process(store, campaign_id, runtime)

    assert final.status == "completed", final.failures
    assert all(s.failed == 0 and s.done == s.total for s in final.stages)
    heads = count(store, HeadRow, campaign_id)
    assert heads > len(kept_heads)
    assert count(store, ExplanationRow, campaign_id) == count(store, HeldOutRow, campaign_id) == heads
    assert count(store, AblationRow, campaign_id) == heads
    with store.session() as session:
        explanations = dict(session.execute(select(ExplanationRow.head_id, ExplanationRow.id).where(
            ExplanationRow.campaign_id == campaign_id)).all())
        scores = session.scalar(select(func.count()).select_from(ScoreRow).where(
            ScoreRow.campaign_id == campaign_id, ScoreRow.control.is_(False)))
    assert {h: explanations[h] for h in kept_explanations} == kept_explanations  # not explained again
    assert scores == heads
    assert len([i for i in items(store, campaign_id, "explain")]) == heads


@pytest.mark.slow  # runs a whole campaign in-process
def test_run_cli_exit_status_lists_failures_and_resume_completes(
        tiny_gpt2_dir, corpus_path, fake_llm, tmp_path, monkeypatch):
    """`lookups run`: completed with failures exits 3, names the failed item and the resume
    command; `lookups run --resume ID` retries it and exits 0."""
    from typer.testing import CliRunner

    from api.cli import app

    for name, value in {"LOOKUPS_RESULTS_URL": f"sqlite:///{tmp_path / 'results.sqlite'}",
                        "LOOKUPS_LLM_DB_URL": f"sqlite:///{tmp_path / 'llm.sqlite'}",
                        "LOOKUPS_DEVICE": "cpu", "LOOKUPS_LLM_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    llm = f"openai-compatible:{fake_llm.url}:fake-cli"
    flags = ["--model", str(tiny_gpt2_dir), "--corpus", str(corpus_path), "--neurons", "3:5,3:17",
             "--max-train-docs", "30", "--max-test-docs", "30", "--context-length", "48",
             "--worth-range", "0.05,0.95", "--test-prompts-per-head", "6", "--explainer", llm, "--classifier", llm]
    fake_llm.faults.append(error(400, "this prompt is refused"))
    runner = CliRunner()

    first = runner.invoke(app, ["run", *flags])
    assert first.exit_code == 3, first.output
    campaign_id = first.stdout.strip().splitlines()[-1]
    assert "completed_with_failures" in first.stderr and "this prompt is refused" in first.stderr
    assert f"lookups run --resume {campaign_id}" in first.stderr
    assert re.search(r"explain \d+:\d+/\d+\.\d+ \(item \d+, 1 attempt\(s\)\)", first.stderr)

    second = runner.invoke(app, ["run", "--resume", campaign_id])
    assert second.exit_code == 0, second.output
    assert "completed_with_failures" not in second.stderr and "failed items" not in second.stderr
    store = Store(os.environ["LOOKUPS_RESULTS_URL"])
    try:
        assert progress(store, campaign_id).status == "completed"
    finally:
        store.dispose()


@pytest.mark.slow  # runs a whole campaign in-process
def test_the_report_shows_the_state_and_the_failed_items(store, config, runtime, fake_llm):
    from services.report import render_report

    fake_llm.faults.append(error(400, "this prompt is refused"))
    campaign_id = create_campaign(store, config)
    run_in_process(store, campaign_id, runtime)
    html = render_report(store, campaign_id)
    assert '<b id="status" class="bad">completed_with_failures</b>' in html
    assert 'id="failures"' in html and "this prompt is refused" in html
    assert f"lookups run --resume {campaign_id}" in html


