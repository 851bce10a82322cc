"""``lookups attribute`` and ``lookups ablate``: head attribution and the ablation check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from api.cli._common import print_json, validated, worth_range
from lookups import InvalidInputError
from services import work
from services.ablation import HeadAblation
from services.attribution import HeadRef, NeuronAttribution, check_head
from services.runtime import Runtime
from services.scan import check_neurons
from services.schemas import NeuronRef
from services.work import AblateWork, AttributeWork, PromptIn

console = Console()

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Packaged name, local checkpoint dir or hub name.")]
NeuronOpt = Annotated[str, typer.Option("--neuron", help="LAYER:INDEX, e.g. 27:1263.")]
PromptsOpt = Annotated[Path, typer.Option(
    "--prompts-file",
    help="JSON: a list of strings, a list of {'text'} or {'tokens'} objects, or the output of "
    "'lookups scan --truncate --json' (the prompts of --neuron are used).",
)]
DefinitionOpt = Annotated[str | None, typer.Option(
    help="'paper' (W_in direction, non-gated MLPs) or 'linearised'; default: paper where it exists."
)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TOP_HEADS_SHOWN = 5


def parse_neuron(text: str) -> NeuronRef:
    try:
        return NeuronRef.parse(text)
    except ValueError as error:
        raise InvalidInputError(f"--neuron: {error}") from error


def load_prompts(path: Path, neuron: NeuronRef) -> list[PromptIn]:
    """Prompts from any of the accepted JSON shapes."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"--prompts-file {path}: {error}") from error
    if isinstance(data, dict) and "contexts" in data:
        matching = [c for c in data["contexts"] if NeuronRef(**c["neuron"]) == neuron]
        if not matching:
            raise InvalidInputError(f"--prompts-file {path}: the scan report has no neuron {neuron}")
        if matching[0].get("prompts") is None:
            raise InvalidInputError(f"--prompts-file {path}: the scan was run without --truncate")
        data = matching[0]["prompts"]
    if not isinstance(data, list):
        raise InvalidInputError(f"--prompts-file {path}: expected a JSON list or a scan report")
    prompts = []
    for item in data:
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or not ({"text", "tokens"} & item.keys()):
            raise InvalidInputError(f"--prompts-file {path}: entries must be strings or objects with 'text' or 'tokens'")
        try:
            prompts.append(PromptIn(doc_id=item.get("doc_id"), text=item.get("text"), tokens=item.get("tokens")))
        except ValidationError as error:
            raise InvalidInputError(f"--prompts-file {path}: prompt {item!r}: {error.errors()[0]['msg']}") from None
    if not prompts:
        raise InvalidInputError(f"--prompts-file {path}: no prompts (give at least one)")
    return prompts


def _attribution(runtime, model: str, ref: NeuronRef, prompts_file: Path, definition: str | None,
                 **criteria) -> NeuronAttribution:

    return work.attribute(runtime, validated(AttributeWork, model=model, neuron=str(ref), definition=definition,
                                        prompts=load_prompts(prompts_file, ref), **criteria))


def attribute(
    neuron: NeuronOpt,
    prompts_file: PromptsOpt,
    model: ModelOpt = "smollm2-135m",
    definition: DefinitionOpt = None,
    active_stds: Annotated[float, typer.Option(help="Active: score > mean + this many std.")] = 2.0,
    worth: Annotated[str, typer.Option("--worth-range", help="Active-fraction range of heads worth explaining, LOW,HIGH.")] = "0.25,0.75",
    as_json: JsonOpt = False,
    worth_low: Annotated[float | None, typer.Option(hidden=True, help="Old spelling of --worth-range's LOW.")] = None,
    worth_high: Annotated[float | None, typer.Option(hidden=True, help="Old spelling of --worth-range's HIGH.")] = None,
) -> None:
    """Score every head below the neuron's layer on each prompt; list active heads and the
    heads worth explaining."""

    low, high = worth_range(worth)
    chosen = (low if worth_low is None else worth_low, high if worth_high is None else worth_high)
    result = _attribution(Runtime(), model, parse_neuron(neuron), prompts_file, definition,
                          active_stds=active_stds, worth_range=chosen)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"neuron {result.neuron}: head attribution ({result.definition})")
    for column in ("prompt", f"top {TOP_HEADS_SHOWN} heads (score)", "active heads"):
        table.add_column(column)
    for record in result.prompts:
        flat = [(score, f"{hl}.{h}") for hl, row in enumerate(record.scores) for h, score in enumerate(row)]
        top = sorted(flat, reverse=True)[:TOP_HEADS_SHOWN]
        table.add_row(repr(record.text[-60:]), ", ".join(f"{name} ({score:.3g})" for score, name in top),
                      ", ".join(map(str, record.active)) or "-")
    console.print(table)
    worth = ", ".join(f"{a.head} ({a.active_fraction:.0%})" for a in result.worth_explaining) or "none"
    low, high = result.worth_range
    console.print(f"heads worth explaining (active on {low:.0%}-{high:.0%} of prompts): {worth}")


def ablate(
    neuron: NeuronOpt,
    heads: Annotated[list[str], typer.Option("--head", help="LAYER.HEAD, below the neuron's layer, e.g. 20.3; "
                                             "repeat for several (one clean pass serves them all).")],
    prompts_file: PromptsOpt,
    model: ModelOpt = "smollm2-135m",
    definition: DefinitionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Zero one head's output; compare the drop in the neuron token's probability on prompts
    where the head is active vs inactive (two-sample KS test)."""

    ref, head_refs, runtime = parse_neuron(neuron), [HeadRef.parse(h) for h in heads], Runtime()
    check_neurons(runtime.model(model), [ref])
    for head_ref in head_refs:  # before the attribution, which takes a while
        check_head(runtime.model(model), ref, head_ref)
    attribution = _attribution(runtime, model, ref, prompts_file, definition)
    ablations = work.ablate(runtime, AblateWork(model=model, attribution=attribution,
                                                heads=[str(h) for h in head_refs])).ablations
    if as_json:
        print_json(ablations[0] if len(ablations) == 1 else ablations)
        return
    for result in ablations:
        _show_ablation(result)


def _show_ablation(result: HeadAblation) -> None:
    table = Table(title=f"neuron {result.neuron} ({result.token!r}), head {result.head} ablated")
    for column in ("prompt", "active", "p clean", "p ablated", "drop"):
        table.add_column(column, justify="left" if column == "prompt" else "right")
    for r in result.prompts:
        table.add_row(repr(r.text[-60:]), "yes" if r.active else "no", f"{r.p_clean:.4g}",
                      f"{r.p_ablated:.4g}", f"{r.drop:.4g}")
    console.print(table)
    if result.ks is None:
        console.print("KS test: needs prompts where the head is active and where it is not")
    else:
        ks = result.ks
        console.print(f"KS test, active (n={ks.n_active}) vs inactive (n={ks.n_inactive}) drops: "
                      f"D = {ks.statistic:.3f}, p = {ks.pvalue:.3g}")


def register(app: typer.Typer) -> None:
    app.command()(attribute)
    app.command()(ablate)
