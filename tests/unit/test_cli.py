"""The CLI as a user runs it: a real subprocess, real files, exit codes and messages."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import corpus_texts

pytestmark = pytest.mark.slow  # each test starts `python -m api` (1-2 s of imports, ~10 s with a model)


def lookups(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "api", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t[:300]}) + "\n"
                            for i, t in enumerate(corpus_texts(12))))
    return path


def test_neurons_json_lists_whole_word_neurons_per_layer(tiny_gpt2_dir):
    done = lookups("neurons", "--model", tiny_gpt2_dir, "--layers", 2, 3, "--per-layer", 2, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model"]["source"] == "local"
    assert [n["layer"] for n in report["neurons"]] == [2, 2, 3, 3]
    assert set(report["neurons"][0]) == {"layer", "neuron", "token", "token_id", "congruence"}


def test_scan_json_reports_hits_prompts_and_provenance(tiny_gpt2_dir, small_corpus, tmp_path):
    neurons_file = tmp_path / "neurons.json"
    neurons_file.write_text(json.dumps([{"layer": 3, "neuron": 11}]))
    done = lookups("scan", "--model", tiny_gpt2_dir, "--corpus", small_corpus, "--split", "all",
                   "--neurons", "2:5", "--neurons-file", neurons_file, "--top-k", 3,
                   "--context-length", 64, "--truncate", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["corpus"]["n_documents"] == 12 and len(report["corpus"]["fingerprint"]) == 64
    assert [c["neuron"] for c in report["contexts"]] == [{"layer": 2, "index": 5}, {"layer": 3, "index": 11}]
    for context in report["contexts"]:
        assert len(context["hits"]) == 3
        assert {"doc_id", "text", "tokens", "activation"} <= set(context["prompts"][0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--neurons", "2:5", "--corpus", "missing.jsonl"], "no corpus source accepts 'missing.jsonl'"),
        (["--neurons", "9:5"], "layer 9 out of range 0..3"),
        (["--neurons", "2-5"], "must look like LAYER:INDEX"),
        ([], "give neurons"),
    ],
)
def test_scan_bad_input_is_one_clear_line(tiny_gpt2_dir, small_corpus, args, message):
    base = ["scan", "--model", tiny_gpt2_dir, "--context-length", 32]
    if "--corpus" not in args:
        base += ["--corpus", small_corpus]
    done = lookups(*base, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [
    ["nosuch"], ["scan"], ["scan", "--corpus"], ["--nosuch-flag"], ["run", "--scorer"],
    ["neurons", "--per-layer", "many"], ["summary"], ["explain", "--input"],
    ["worker", "--queues"], ["report"],
])
def test_usage_errors_are_a_message_and_the_usage_hint_with_exit_2(args):
    done = lookups(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Error" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 6


def test_version_flag():
    from importlib.metadata import version

    done = lookups("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"lookups {version('lookups')}"


@pytest.mark.parametrize("extra, message", [
    ([], "explainer model 'mystery' has no price"),
    (["--price", "mystery=cheap"], "--price 'mystery=cheap': expected MODEL=IN,OUT"),
])
def test_a_budget_on_an_unpriced_model_is_refused_before_anything_runs(small_corpus, tmp_path, extra, message):
    done = lookups("run", "--corpus", small_corpus, "--explainer", "openai-compatible:http://127.0.0.1:9/v1:mystery",
                   "--budget", "1", *extra, cwd=tmp_path)
    assert done.returncode == 2 and message in " ".join(done.stderr.split()) and "Traceback" not in done.stderr
    assert "in store" not in done.stdout + done.stderr  # refused before a campaign was created


def test_lookups_run_runs_llm_items_one_at_a_time_only_when_every_llm_is_local():
    from api.cli.run import default_llm_concurrency
    from services.campaigns.config import CampaignConfig

    remote = "openai-compatible:http://127.0.0.1:9/v1:some-model"
    assert default_llm_concurrency(CampaignConfig(corpus="c", explainer="local", classifier="local"), 8) == 1
    assert default_llm_concurrency(CampaignConfig(corpus="c", explainer=remote, classifier="local"), 8) == 8
    assert default_llm_concurrency(CampaignConfig(corpus="c", explainer="local", classifier=remote), 8) == 8
