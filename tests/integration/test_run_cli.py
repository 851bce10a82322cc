"""``lookups run`` end to end: a whole tiny campaign in one process, interrupted and resumed,
then its report rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import REPO


def tiny_flags(model_dir, corpus_path) -> list[str]:
    return ["--model", str(model_dir), "--corpus", str(corpus_path), "--neurons", "3:5,3:17",
            "--max-train-docs", "40", "--max-test-docs", "40", "--context-length", "64",
            "--worth-range", "0.05,0.95", "--test-prompts-per-head", "6"]


@pytest.fixture
def run_env(tmp_path) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "LOOKUPS_DEVICE": "cpu",
            "LOOKUPS_RESULTS_URL": f"sqlite:///{tmp_path / 'results.sqlite'}",
            "LOOKUPS_LLM_DB_URL": f"sqlite:///{tmp_path / 'llm.sqlite'}"}


def lookups(env, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def campaign_state(url: str):
    from services.campaigns.lifecycle import active_campaigns
    from services.campaigns.status_view import progress
    from services.store import Store

    store = Store(url)
    try:
        with store.session() as session:
            from services.store.models import Campaign

            ids = [c.id for c in session.query(Campaign).all()]
        return [progress(store, i) for i in ids], active_campaigns(store)
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def finished(tiny_gpt2_dir, corpus_path, tmp_path_factory):
    """A tiny campaign run with ``lookups run``, interrupted with Ctrl-C (SIGINT) once its
    attribution stage started, then finished with ``lookups run --resume``."""
    tmp = tmp_path_factory.mktemp("run")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "LOOKUPS_DEVICE": "cpu",
           "LOOKUPS_RESULTS_URL": f"sqlite:///{tmp / 'results.sqlite'}",
           "LOOKUPS_LLM_DB_URL": f"sqlite:///{tmp / 'llm.sqlite'}"}
    # A shell's background job starts with SIGINT ignored, and Python then keeps ignoring it:
    # the child gets the default disposition so that Ctrl-C reaches it however pytest was run.
    first = subprocess.Popen([sys.executable, "-m", "api", "run", *tiny_flags(tiny_gpt2_dir, corpus_path)],
                             env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def reached_truncate() -> bool:
        if first.poll() is not None:
            raise AssertionError(f"lookups run ended early: {first.communicate()}")
        if not (tmp / "results.sqlite").exists():
            return False
        states, _ = campaign_state(env["LOOKUPS_RESULTS_URL"])
        return bool(states) and states[0].stage not in (None, "neurons", "scan")

    wait_for(reached_truncate, 240, "the campaign to reach truncation")
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=120)
    interrupted = (first.returncode, out, err)
    states, _ = campaign_state(env["LOOKUPS_RESULTS_URL"])
    campaign_id = states[0].id
    second = subprocess.run([sys.executable, "-m", "api", "run", "--resume", campaign_id], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    return {"env": env, "tmp": tmp, "id": campaign_id, "interrupted": interrupted, "resumed": second,
            "mid": states[0]}


def test_run_interrupt_and_resume(finished):
    code, _, err = finished["interrupted"]
    assert code == 130, err
    assert f"lookups run --resume {finished['id']}" in err
    assert finished["mid"].status == "running"  # left resumable, not failed
    assert finished["resumed"].returncode == 0, finished["resumed"].stderr
    assert finished["resumed"].stdout.strip().splitlines()[-1] == finished["id"]
    assert "results.sqlite" in finished["resumed"].stderr  # says where the store is
    states, active = campaign_state(finished["env"]["LOOKUPS_RESULTS_URL"])
    assert len(states) == 1 and not active
    state = states[0]
    assert state.status == "completed", state.error
    by_stage = {s.stage: s for s in state.stages}
    assert by_stage["neurons"].done == 1 and by_stage["scan"].done == 1
    assert by_stage["truncate"].done == 2 and by_stage["attribute"].done == 2
    assert all(s.failed == 0 and s.pending == 0 and s.running == 0 for s in state.stages)
    assert by_stage["explain"].done >= 1
    assert state.input_tokens > 0
    # it ends with the figures to quote, then where the report is, each on a line of its own
    lines = finished["resumed"].stderr.splitlines()
    assert any(line.startswith("  zero-shot: mean E ") for line in lines)
    assert any(line.startswith("done. Report: lookups report") for line in lines)


def test_summary_gives_each_scorers_figures(finished):
    from services.campaigns.lifecycle import get_campaign
    from services.store import Store

    done = lookups(finished["env"], "summary", "latest", "--json")
    assert done.returncode == 0, done.stderr
    headline = json.loads(done.stdout)
    store = Store(finished["env"]["LOOKUPS_RESULTS_URL"])
    with store.session() as session:
        stored = get_campaign(session, finished["id"]).summary["scorers"]
    assert headline["id"] == finished["id"] and headline["strategy"] == "oneshot"
    lines = {line["scorer"]: line for line in headline["scorers"]}
    assert list(lines) == ["zero-shot", "probe"]  # the text-probe ceiling beside the headline, by default
    assert all(line["summary"] == stored[name] for name, line in lines.items())
    line = lines["zero-shot"]
    assert line["summary"]["paired"]["n_pairs"] <= line["summary"]["explanations"]["n_scored"]
    assert lines["probe"]["summary"]["calls"] == 0  # no LLM
    table = lookups(finished["env"], "summary", finished["id"])
    assert table.returncode == 0 and "zero-shot: mean E" in table.stdout and "probe: mean E" in table.stdout
    missing = lookups(finished["env"], "summary", "nosuch")
    assert missing.returncode == 2 and "no campaign with id 'nosuch'" in missing.stderr


def test_results_export(finished):
    from services.campaigns.results import campaign_results
    from services.store import Store

    store = Store(finished["env"]["LOOKUPS_RESULTS_URL"])
    results = campaign_results(store, finished["id"])
    assert results.count == 2 and [(n.layer, n.neuron) for n in results.neurons] == [(3, 5), (3, 17)]
    heads = [h for n in results.neurons for h in n.heads]
    assert heads and all(h.explanation for h in heads)
    assert all(len(row) == 4 for n in results.neurons for row in n.mean_attribution)  # 4 heads
    assert len(results.neurons[0].mean_attribution) == 3  # layers 0-2 feed layer 3
    assert results.summary.explanations is not None
    assert len(results.scores) == results.summary.explanations.n_scored
    page = campaign_results(store, finished["id"], skip=1, limit=5)
    assert page.count == 2 and [(n.layer, n.neuron) for n in page.neurons] == [(3, 17)]


def test_estimate_exact_for_a_finished_campaign(finished):
    done = lookups(finished["env"], "estimate", "--campaign", finished["id"], "--json")
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)
    assert estimate["exact"] and estimate["assumptions"] == []
    assert estimate["calls"] == 0  # every request is in the LLM cache already
    assert estimate["explain"]["cached_calls"] >= 1


def test_estimate_from_flags_states_its_assumptions(finished):
    done = lookups(finished["env"], "estimate", "--neurons", "3:5,3:17", "--explainer", "openai:gpt-4o",
                   "--classifier", "openai:gpt-4o-mini", "--json")
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)
    assert not estimate["exact"] and any("heads worth explaining" in a for a in estimate["assumptions"])
    assert estimate["explain"]["calls"] == 6  # 2 neurons x 3 heads
    # real and shuffled, up to 10 active and 10 inactive test prompts (balanced); the probe calls nothing
    assert estimate["classify"]["calls"] == 6 * 2 * 20
    assert estimate["usd"] > 0


def test_run_rejects_bad_flags(run_env, corpus_path):
    done = lookups(run_env, "run", "--corpus", str(corpus_path), "--neurons", "3-5")
    assert done.returncode == 2 and "LAYER:INDEX" in done.stderr
    done = lookups(run_env, "run", "--neurons", "3:5")
    assert done.returncode == 2 and "--corpus" in done.stderr
    done = lookups(run_env, "run", "--resume", "nope")
    assert done.returncode == 2 and "no campaign with id 'nope'" in done.stderr


PROBE = """<script>
window.addEventListener("load", () => {
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    text: document.body.innerText,
    images: [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth,
                                            shown: i.getBoundingClientRect().width})),
    firing: [...document.querySelectorAll("mark.fire")].map(m => m.textContent),
  });
  document.body.appendChild(probe);
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed (Debian package chromium)")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_renders_in_chromium(finished, tmp_path):
    """Open the report as a person would and check what is visible: the summary, explanations,
    highlighted firing tokens and figures that actually decode."""
    from services.campaigns.results import campaign_results
    from services.store import Store

    report = tmp_path / "report.html"
    done = lookups(finished["env"], "report", finished["id"], "-o", str(report))
    assert done.returncode == 0, done.stderr
    html = report.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained: nothing to fetch
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    shown = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--run-all-compositor-stages-before-draw",
                     "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    import html as html_lib
    import re

    match = re.search(r'<pre id="probe">(.*?)</pre>', shown.stdout, re.S)
    assert match, shown.stderr[-2000:]
    page = json.loads(html_lib.unescape(match.group(1)))
    text = page["text"]

    results = campaign_results(Store(finished["env"]["LOOKUPS_RESULTS_URL"]), finished["id"])
    assert f"{results.campaign.name}\n" in text and "3:5,3:17" in results.campaign.name and "completed" in text
    assert f"{results.campaign.input_tokens} in / {results.campaign.output_tokens} out" in text
    assert f"{results.summary.explanations.mean:.3f}" in text  # mean head explanation score
    summary = results.summary.explanations
    assert summary.n_answers > 0
    assert f"{summary.n_unparseable} / {summary.n_answers}" in text  # the judge's unparseable share
    explained = [h for n in results.neurons for h in n.heads if h.explanation]
    assert explained[0].explanation.split("\n")[0][:60] in text
    assert "Neuron 3:5" in text and "Neuron 3:17" in text
    assert page["firing"] and all(page["firing"])  # every shown prompt has its firing token marked
    images = page["images"]
    assert any(i["alt"].startswith("distribution") for i in images)
    assert sum(i["alt"].startswith("layer by head") for i in images) == 2  # one heatmap per neuron
    assert all(i["width"] > 0 and i["shown"] > 0 for i in images), images

    screenshot = tmp_path / "report.png"
    chromium(f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1200,2400",
             f"--screenshot={screenshot}", report.as_uri())
    assert screenshot.stat().st_size > 10_000


def test_report_latest_is_the_newest_campaign(finished, tmp_path):
    latest = tmp_path / "latest.html"
    done = lookups(finished["env"], "report", "latest", "-o", str(latest))
    assert done.returncode == 0, done.stderr
    assert finished["id"] in latest.read_text()  # the store's only, hence newest, campaign


def test_report_overlays_a_baseline_campaign(finished, tmp_path):
    """``--baseline`` adds the other campaign's scores to the figure and the score table (here the
    campaign itself stands in for a random-neuron run, which would take another minute)."""
    report = tmp_path / "report.html"
    done = lookups(finished["env"], "report", finished["id"], "--baseline", finished["id"], "-o", str(report))
    assert done.returncode == 0, done.stderr
    assert "<th>random-neuron baseline</th>" in report.read_text()
    missing = lookups(finished["env"], "report", finished["id"], "--baseline", "nope", "-o", str(report))
    assert missing.returncode == 2 and "no campaign with id 'nope'" in missing.stderr
