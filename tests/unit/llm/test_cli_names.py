"""One name per setting across commands: `lookups explain|classify` take --explainer,
--classifier, --explainer-strategy and --price as `lookups run` does (the old --backend and
--strategy still work, hidden from --help); `lookups attribute` takes --worth-range. And
LOOKUPS_LLM_PRICES adds to the built-in price table."""

from __future__ import annotations

import json

import pytest
import typer
from cli_runner import run

from api.cli import app
from services.campaigns.config import CampaignConfig
from services.settings import BUILT_IN_PRICES, Settings


def options(command: str) -> dict[str, bool]:
    """Each option name of ``lookups COMMAND`` -> hidden."""
    found = typer.main.get_command(app).commands[command]
    return {name: p.hidden for p in found.params if p.param_type_name == "option" for name in p.opts}


@pytest.mark.parametrize(("command", "shown", "hidden"), [
    ("explain", {"--explainer", "--explainer-strategy", "--price"}, {"--backend", "--strategy"}),
    ("classify", {"--classifier", "--scorer", "--price"}, {"--backend"}),
    ("attribute", {"--worth-range"}, {"--worth-low", "--worth-high"}),
])
def test_commands_share_run_s_names_and_hide_the_old_ones(command, shown, hidden):
    found = options(command)
    assert {name for name in shown if found.get(name) is False} == shown
    assert {name for name in hidden if found.get(name) is True} == hidden


@pytest.fixture
def heads(tmp_path):
    path = tmp_path / "head_examples.json"
    path.write_text(json.dumps({"token": " right", "active_examples": ["turn"], "inactive_examples": ["left"]}))
    return path


def test_explain_s_budget_hint_names_a_flag_it_has(settings, fake_server, heads, capsys):
    spec = f"openai-compatible:{fake_server.url}:mystery-model"
    code, _, err = run(["explain", "--explainer", spec, "--input", str(heads), "--budget", "1", "--dry-run"], capsys)
    assert code == 2 and "--price 'mystery-model=IN,OUT'" in " ".join(err.split())
    code, _, err = run(["explain", "--explainer", spec, "--input", str(heads), "--budget", "1",
                        "--price", "mystery-model=1,2", "--dry-run"], capsys)
    assert code == 0 and "1 call(s) to make" in err and fake_server.requests == []


def test_the_old_spellings_still_work(settings, fake_server, heads, capsys):
    code, _, err = run(["explain", "--backend", "openai:fake-gpt", "-o", f"base_url={fake_server.url}",
                        "--strategy", "oneshot", "--input", str(heads), "--dry-run"], capsys)
    assert code == 0 and "1 call(s) to make" in err


def test_attribute_names_its_worth_range_flag(tmp_path, capsys):
    prompts = tmp_path / "P.json"
    prompts.write_text(json.dumps(["the cat sat"]))
    code, _, err = run(["attribute", "--model", str(tmp_path / "unused"), "--neuron", "1:2",
                        "--prompts-file", str(prompts), "--worth-range", "0.9"], capsys)
    assert code == 2 and "--worth-range '0.9': expected LOW,HIGH" in err


def test_lookups_llm_prices_adds_to_the_built_in_table(monkeypatch):
    monkeypatch.setenv("LOOKUPS_LLM_PRICES", '{"my-model": [1, 2], "gpt-4o-mini": [0.2, 0.8]}')
    assert Settings().llm_prices == {**BUILT_IN_PRICES, "my-model": (1.0, 2.0), "gpt-4o-mini": (0.2, 0.8)}
    CampaignConfig(corpus="c.jsonl", explainer="openai:gpt-4o", classifier="openai:gpt-4o", budget_usd=5.0)
