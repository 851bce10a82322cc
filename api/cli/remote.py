"""``lookups campaign submit|status|results|cancel|resume|report``: campaigns through the REST API
(LOOKUPS_API_URL, LOOKUPS_API_TOKEN)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli import run as local
from api.cli._common import print_json
from api.client import LookupsClient
from services.settings import get_settings

campaign_app = typer.Typer(help="Campaigns on a lookups API server (LOOKUPS_API_URL, LOOKUPS_API_TOKEN).",
                           no_args_is_help=True)
IdArg = Annotated[str, typer.Argument(help="Campaign id.")]


def _client():

    settings = get_settings()
    return LookupsClient(settings.api_url, settings.api_token)


@campaign_app.command()
def submit(
    config: local.ConfigOpt = None, name: local.NameOpt = None, model: local.ModelOpt = None,
    corpus: local.CorpusOpt = None, neurons: local.NeuronsOpt = None, layers: local.LayersOpt = None,
    per_layer: local.PerLayerOpt = None, random: local.RandomOpt = False, seed: local.SeedOpt = None,
    max_train_docs: local.TrainOpt = None, max_test_docs: local.TestOpt = None,
    context_length: local.ContextOpt = None, test_prompts_per_head: local.TestPromptsOpt = None,
    test_sampling: local.SamplingOpt = None, activity: local.ActivityOpt = None,
    worth_range: local.WorthOpt = None, explainer: local.ExplainerOpt = None,
    classifier: local.ClassifierOpt = None, strategy: local.StrategyOpt = None,
    scorer: local.ScorersOpt = None, budget: local.BudgetOpt = None, price: local.PriceOpt = None,
    ablation: local.AblationOpt = None, llm_mode: local.LLMModeOpt = None,
) -> None:
    """Submit a campaign (same config file and flags as ``lookups run``); prints its id."""
    chosen = local._config(config, name, model, corpus, neurons, layers, per_layer, random, seed,
                           max_train_docs, max_test_docs, context_length, test_prompts_per_head,
                           worth_range, explainer, classifier, strategy, scorer, budget, ablation, price, llm_mode,
                           test_sampling, activity)
    accepted = _client().submit(chosen)
    if not accepted.dispatched:
        Console(stderr=True).print("the broker is unreachable now; the campaign is stored and will start later")
    typer.echo(accepted.id)


@campaign_app.command()
def status(campaign_id: IdArg,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Status, per-stage progress, tokens, cost and ETA, and the failed items with how to retry
    them."""
    state = _client().status(campaign_id)
    if as_json:
        print_json(state)
    else:
        Console().print(local.progress_table(state))
        for line in local.failure_lines(state, "lookups campaign resume"):
            Console().print(line, markup=False, highlight=False)


@campaign_app.command()
def results(campaign_id: IdArg,
            skip: Annotated[int, typer.Option(help="Neurons to skip.")] = 0,
            limit: Annotated[int, typer.Option(help="Neurons per page (at most 100).")] = 20) -> None:
    """One page of the campaign's results as JSON."""
    print_json(_client().results(campaign_id, skip, limit))


@campaign_app.command()
def cancel(campaign_id: IdArg) -> None:
    """Stop the campaign (running items finish; results are kept)."""
    typer.echo(_client().cancel(campaign_id).status)


@campaign_app.command()
def resume(campaign_id: IdArg) -> None:
    """Continue a cancelled or failed campaign, or retry the failed items of one completed with
    failures."""
    typer.echo(_client().resume(campaign_id).status)


@campaign_app.command()
def report(campaign_id: IdArg,
           output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html")) -> None:
    """Download the campaign's HTML report."""
    output.write_text(_client().report(campaign_id))
    Console(stderr=True).print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
