"""``lookups export``: a finished campaign's tables as JSON Lines and Parquet, read back with
``datasets`` the way a user would, joined on their keys and matching the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent / "llm"))
from fake_openai import FakeOpenAI  # noqa: E402

from services.campaigns.execute import run_in_process  # noqa: E402
from services.campaigns.lifecycle import create_campaign  # noqa: E402
from services.export import TABLES, export_campaign  # noqa: E402
from services.store.models import ContextRow, ExplanationRow, HeadRow, ScoreRow  # noqa: E402
from tests.conftest import tiny_campaign  # noqa: E402


@pytest.fixture(scope="module")
def finished(tiny_gpt2_dir, corpus_path, runtime, tmp_path_factory):
    """One campaign run to the end (module-wide: the export tests only read it)."""
    from services.store import Store

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('export') / 'results.sqlite'}")
    with FakeOpenAI() as server:
        server.respond = lambda prompt: "Yes" if "Answer:" in prompt else "It is active after a list."
        config = tiny_campaign(tiny_gpt2_dir, corpus_path, f"openai-compatible:{server.url}:fake-export",
                               scorers=["zero-shot", "detection", "probe"], activity="per-head",
                               test_sampling="balanced", test_prompts_per_head=3)
        campaign_id = create_campaign(store, config)
        assert run_in_process(store, campaign_id, runtime).status == "completed"
    yield store, campaign_id
    store.dispose()


def rows_in(store, table, campaign_id) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(table).where(table.campaign_id == campaign_id))


@pytest.mark.parametrize("fmt, builder", [("jsonl", "json"), ("parquet", "parquet")])
@pytest.mark.slow  # reads a campaign run to the end in-process
def test_every_table_reads_back_with_datasets_and_joins_on_its_keys(finished, tmp_path, fmt, builder):
    from datasets import load_dataset

    store, campaign_id = finished
    written = export_campaign(store, campaign_id, tmp_path, fmt)
    assert set(written) == set(TABLES)
    tables = {name: load_dataset(builder, data_files=str(tmp_path / f"{name}.{fmt}"), split="train")
              for name in TABLES}
    assert {name: len(t) for name, t in tables.items()} == written
    assert written["campaign"] == 1 and tables["campaign"][0]["campaign_id"] == campaign_id
    assert written["contexts"] == rows_in(store, ContextRow, campaign_id) > 0
    assert written["heads"] == rows_in(store, HeadRow, campaign_id) > 0
    assert written["explanations"] == rows_in(store, ExplanationRow, campaign_id) > 0
    assert written["scores"] == rows_in(store, ScoreRow, campaign_id) > 0

    head_key = ("layer", "neuron", "head_layer", "head")
    heads = {tuple(row[k] for k in head_key) for row in tables["heads"]}
    neurons = {(row["layer"], row["neuron"]) for row in tables["neurons"]}
    assert {key[:2] for key in heads} <= neurons
    for name in ("explanations", "scores", "ablations"):
        assert {tuple(row[k] for k in head_key) for row in tables[name]} <= heads, name
    assert {row["scorer"] for row in tables["scores"]} == {"zero-shot", "detection", "probe"}
    assert json.loads(tables["campaign"][0]["config"])["scorers"] == ["zero-shot", "detection", "probe"]


def balanced_accuracy(labels: list[bool], answers: list[str]) -> float | None:
    active = [a == "yes" for label, a in zip(labels, answers) if label]
    inactive = [a == "no" for label, a in zip(labels, answers) if not label]
    return 0.5 * (sum(active) / len(active) + sum(inactive) / len(inactive)) if active and inactive else None


@pytest.mark.slow  # reads a campaign run to the end in-process
def test_every_score_is_recomputed_from_the_per_prompt_tables(finished, tmp_path):
    from collections import defaultdict
    from statistics import median

    store, campaign_id = finished
    export_campaign(store, campaign_id, tmp_path, "jsonl")
    read = {name: [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
            for name in ("scores", "test_prompts", "train_prompts")}
    head_key = ("layer", "neuron", "head_layer", "head")

    per_head = defaultdict(list)
    for row in read["test_prompts"]:
        per_head[tuple(row[k] for k in head_key)].append(row)
    recomputed = 0
    for score in read["scores"]:
        rows = sorted(per_head[tuple(score[k] for k in head_key)], key=lambda r: r["index"])
        column = score["scorer"] + ("_control" if score["control"] else "") + "_answer"
        if score["skipped"] is None:
            assert score["score"] == pytest.approx(
                balanced_accuracy([r["active"] for r in rows], [r[column] for r in rows]))
            recomputed += 1
    assert recomputed > 0

    # per-head activity: a head is active on a training prompt above its own median attribution
    train = defaultdict(list)
    for row in read["train_prompts"]:
        train[tuple(row[k] for k in head_key)].append(row)
    assert set(train) == set(per_head)
    for rows in train.values():
        middle = median(r["attribution"] for r in rows)
        assert [r["active"] for r in rows] == [r["attribution"] > middle for r in rows]


@pytest.mark.slow  # reads a campaign run to the end in-process
def test_the_cli_exports_the_latest_campaign(finished, tmp_path):
    store, campaign_id = finished
    env = {**os.environ, "LOOKUPS_RESULTS_URL": store.url}
    done = subprocess.run([sys.executable, "-m", "api", "export", "latest", "-o", str(tmp_path), "--format", "jsonl"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first = json.loads((tmp_path / "campaign.jsonl").read_text().splitlines()[0])
    assert first["campaign_id"] == campaign_id


@pytest.mark.slow  # reads a campaign run to the end in-process
def test_an_unknown_format_is_a_usage_error(finished, tmp_path):
    store, _ = finished
    env = {**os.environ, "LOOKUPS_RESULTS_URL": store.url}
    done = subprocess.run([sys.executable, "-m", "api", "export", "latest", "-o", str(tmp_path), "--format", "xml"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "xml" in done.stderr


@pytest.mark.slow  # reads a campaign run to the end in-process
def test_the_summary_says_when_the_judge_could_not_be_constrained(finished):
    from api.cli.run import headline_lines
    from services.campaigns.summary import campaign_headline

    store, campaign_id = finished
    headline = campaign_headline(store, campaign_id)
    lines = {line.scorer: line.summary for line in headline.scorers}
    assert lines["zero-shot"].constrained is False  # an openai-compatible server without guided_choice
    assert lines["probe"].constrained is None  # asks no judge
    text = "\n".join(headline_lines(headline))
    zero_shot_line = next(line for line in text.splitlines() if line.strip().startswith("zero-shot"))
    probe_line = next(line for line in text.splitlines() if line.strip().startswith("probe"))
    assert "cannot restrict its answers to Yes/No" in zero_shot_line and "cannot restrict" not in probe_line
    assert ("detectable" in zero_shot_line) == (lines["zero-shot"].paired.detectable is not None)
