"""``lookups neurons`` and ``lookups scan``: the analysis core from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli._common import print_json, validated
from lookups import InvalidInputError
from services import work
from services.runtime import Runtime
from services.schemas import NeuronRef
from services.work import NeuronsWork, ScanWork, TruncateWork, find_neurons

console = Console()

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Packaged name, local checkpoint dir or hub name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def parse_neurons(spec: str | None, neurons_file: Path | None) -> list[NeuronRef]:
    """Neurons from ``27:1263,29:1135`` and/or a JSON file (strings, or ``lookups neurons --json``)."""
    refs = []
    if spec:
        try:
            refs += [NeuronRef.parse(part) for part in spec.split(",") if part.strip()]
        except ValueError as error:
            raise InvalidInputError(str(error)) from error
    if neurons_file is not None:
        try:
            data = json.loads(neurons_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InvalidInputError(f"--neurons-file {neurons_file}: {error}") from error
        items = data["neurons"] if isinstance(data, dict) and "neurons" in data else data
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str):
                refs.append(NeuronRef.parse(item))
            elif isinstance(item, dict) and "layer" in item:
                refs.append(NeuronRef(layer=item["layer"], index=item.get("neuron", item.get("index"))))
            else:
                raise InvalidInputError(
                    f"--neurons-file {neurons_file}: entries must be 'LAYER:INDEX' or "
                    "{'layer': L, 'neuron': I}"
                )
    if not refs:
        raise InvalidInputError("give neurons with --neurons 27:1263,... or --neurons-file")
    return list(dict.fromkeys(refs))


def neurons(
    model: ModelOpt = "smollm2-135m",
    layers: Annotated[list[int] | None, typer.Option(help="Layers (default: the last three).")] = None,
    per_layer: Annotated[int, typer.Option(help="Neurons kept per layer.")] = 20,
    random: Annotated[bool, typer.Option("--random", help="The random-neuron baseline instead.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random baseline.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List next-token neurons: congruence of W_out[L] @ W_U, whole-word tokens only."""

    result = find_neurons(Runtime(), NeuronsWork(model=model, layers=layers, per_layer=per_layer,
                                                 random=random, seed=seed))
    found = result.neurons
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{'random' if random else 'next-token'} neurons of {model}")
    for column in ("layer", "neuron", "token", "token_id", "congruence"):
        table.add_column(column, justify="left" if column == "token" else "right")
    for n in found:
        table.add_row(str(n.layer), str(n.neuron), repr(n.token), str(n.token_id), f"{n.congruence:.3f}")
    console.print(table)


def scan(
    corpus: Annotated[str, typer.Option(help="A .jsonl[.gz]/.txt/.parquet file, a folder, or hf:NAME[:CONFIG][?split=S&revision=R&text_column=C].")],
    model: ModelOpt = "smollm2-135m",
    neurons_spec: Annotated[str | None, typer.Option("--neurons", help="e.g. 27:1263,29:1135")] = None,
    neurons_file: Annotated[Path | None, typer.Option(help="JSON list of neurons.")] = None,
    split: Annotated[str, typer.Option(help="train, test or all.")] = "train",
    test_fraction: Annotated[float, typer.Option(help="Last fraction of documents held out as test.")] = 0.2,
    test_from_id: Annotated[str | None, typer.Option(help="Documents with id >= this are the test split.")] = None,
    max_docs: Annotated[int | None, typer.Option(help="Scan only the first N documents of the split.")] = None,
    top_k: Annotated[int, typer.Option(help="Documents kept per neuron.")] = 30,
    context_length: Annotated[int | None, typer.Option(help="Tokens per document, BOS included.")] = None,
    batch_tokens: Annotated[int, typer.Option(help="Padded tokens per forward pass.")] = 2048,
    truncate_contexts: Annotated[bool, typer.Option("--truncate", help="Also truncate each top context.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Scan a corpus once for the top-K documents of every neuron (optionally truncated)."""

    runtime = Runtime(progress=True)
    selection = {"corpus": corpus, "split": split, "test_fraction": test_fraction,
                 "test_from_id": test_from_id, "max_docs": max_docs}
    common = {"model": model, "context_length": context_length, "batch_tokens": batch_tokens}
    found = work.scan(runtime, validated(ScanWork, **selection, **common, top_k=top_k,
                                    neurons=[str(r) for r in parse_neurons(neurons_spec, neurons_file)]))
    if truncate_contexts:
        found.contexts = work.truncate(runtime, validated(TruncateWork, **selection, **common,
                                                     contexts=found.contexts)).contexts
    if as_json:
        print_json(found)
        return
    for context in found.contexts:
        table = Table(title=f"neuron {context.neuron}: top {len(context.hits)} documents")
        for column in ("doc_id", "position", "activation"):
            table.add_column(column, justify="right")
        for hit in context.hits:
            table.add_row(hit.doc_id, str(hit.position), f"{hit.activation:.3f}")
        console.print(table)
        if context.prompts is not None:
            prompts = Table(title=f"neuron {context.neuron}: {len(context.prompts)} truncated prompts")
            for column in ("doc_id", "tokens", "activation", "text"):
                prompts.add_column(column, justify="left" if column == "text" else "right")
            for p in context.prompts:
                prompts.add_row(p.doc_id, str(len(p.tokens)), f"{p.activation:.3f}", repr(p.text))
            console.print(prompts)


def register(app: typer.Typer) -> None:
    app.command()(neurons)
    app.command()(scan)
