"""``lookups attribute`` and ``lookups ablate`` as a user runs them (real subprocesses)."""

import json
import os
import subprocess
import sys

import pytest

from api.cli import app
from api.cli._common import run_guarded
from lookups import Document
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.truncate import truncate_contexts
from services.work import ScanResult
from tests.conftest import corpus_texts


def run_cli(args) -> int:
    with pytest.raises(SystemExit) as done:
        run_guarded(app, [str(a) for a in args])
    return done.value.code


def lookups(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "api", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def strings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.json"
    path.write_text(json.dumps([t[:80] for t in corpus_texts(5)] + [{"tokens": [5, 17, 99]}]))
    return path


@pytest.mark.slow  # a real `lookups` subprocess loading a model: ~10 s
def test_attribute_json_gives_scores_active_heads_and_heads_worth_explaining(tiny_gpt2_dir, strings_file):
    done = lookups("attribute", "--model", tiny_gpt2_dir, "--neuron", "3:5",
                   "--prompts-file", strings_file, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["definition"] == "paper" and report["neuron"] == {"layer": 3, "index": 5}
    assert len(report["prompts"]) == 6
    first = report["prompts"][0]
    assert len(first["scores"]) == 3 and len(first["scores"][0]) == 4  # layers 0-2, 4 heads
    assert report["prompts"][-1]["tokens"] == [5, 17, 99]
    n = len(report["prompts"])
    for worth in report["worth_explaining"]:
        active = sum(worth["head"] in p["active"] for p in report["prompts"])
        assert worth["active_fraction"] == pytest.approx(active / n)
        assert 0.25 <= active / n <= 0.75


@pytest.mark.slow  # a real `lookups` subprocess loading a model: ~10 s
def test_attribute_reads_the_neurons_prompts_from_a_scan_report(tiny_gpt2, tiny_gpt2_dir, tmp_path):
    docs = [Document(id=f"d{i}", text=t[:300]) for i, t in enumerate(corpus_texts(10))]
    neurons = [NeuronRef(layer=2, index=1), NeuronRef(layer=3, index=5)]
    contexts = truncate_contexts(tiny_gpt2, scan_corpus(tiny_gpt2, neurons, docs, top_k=4, context_length=64),
                                 docs, context_length=64)
    report = ScanResult(contexts=contexts)
    path = tmp_path / "scan.json"
    path.write_text(report.model_dump_json())
    done = lookups("attribute", "--model", tiny_gpt2_dir, "--neuron", "3:5", "--prompts-file", path, "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)["prompts"]
    assert [p["tokens"] for p in got] == [p.tokens for p in contexts[1].prompts]
    assert [p["doc_id"] for p in got] == [p.doc_id for p in contexts[1].prompts]


@pytest.mark.slow  # a real `lookups` subprocess loading a model: ~10 s
def test_ablate_json_reports_drops_and_labels(tiny_llama_dir, strings_file):
    done = lookups("ablate", "--model", tiny_llama_dir, "--neuron", "3:5", "--head", "2.1",
                   "--prompts-file", strings_file, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["head"] == {"layer": 2, "head": 1} and report["definition"] == "linearised"
    assert len(report["prompts"]) == 6
    for p in report["prompts"]:
        assert p["drop"] == pytest.approx(p["p_clean"] - p["p_ablated"])


@pytest.mark.parametrize("args,message", [
    (["ablate", "--neuron", "3:5", "--head", "3.0"], "layer 3 out of range 0..2"),
    (["ablate", "--neuron", "3:5", "--head", "1.7"], "head index 7 out of range 0..3"),
    (["ablate", "--neuron", "3:5", "--head", "1:2"], "must look like LAYER.HEAD"),
    (["attribute", "--neuron", "9:5"], "layer 9 out of range 0..3"),
    (["attribute", "--neuron", "0:5"], "layer must be in 1..3"),
])
def test_bad_heads_and_neurons_are_refused(tiny_gpt2_dir, strings_file, args, message, capsys):
    """In-process (same error path as the subprocess runs above, without the start-up cost)."""
    assert run_cli([*args, "--model", tiny_gpt2_dir, "--prompts-file", strings_file]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_empty_prompts_file_is_refused(tiny_gpt2_dir, tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    assert run_cli(["attribute", "--model", tiny_gpt2_dir, "--neuron", "3:5", "--prompts-file", path]) == 2
    assert "no prompts (give at least one)" in " ".join(capsys.readouterr().err.split())
