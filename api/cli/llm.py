"""``lookups backends|templates|explainers|scorers|explain|classify``: the LLM side from the
command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from api.cli._common import err_console, parse_prices, print_json
from lookups import ClassifyRequest, ExplainRequest, InvalidInputError, check_program
from services.classify import classify as run_classify
from services.explain import explain as run_explain
from services.llm.budget import local_budget
from services.llm.client import LLMClient
from services.llm.registry import (
    DEFAULT_EXPLAINER,
    DEFAULT_JUDGE,
    create_backend,
    get_scorer,
    get_strategy,
    get_template,
    list_backends,
    list_scorers,
    list_strategies,
    list_templates,
)
from services.settings import get_settings

console = Console()

SPECS = "local, local:smollm2-f16, local:/m.gguf, openai:gpt-4o, anthropic:MODEL, openai-compatible:URL:MODEL"
ExplainerOpt = Annotated[str, typer.Option("--explainer", help=f"Explainer backend spec: {SPECS}.")]
ClassifierOpt = Annotated[str, typer.Option("--classifier", help=f"Judge backend spec: {SPECS}.")]
# Old spellings, still accepted for scripts but hidden from --help: one name per setting across commands.
OldBackendOpt = Annotated[str | None, typer.Option("--backend", "-b", hidden=True, help="Old spelling of --explainer/--classifier.")]
OldStrategyOpt = Annotated[str | None, typer.Option("--strategy", "-s", hidden=True, help="Old spelling of --explainer-strategy.")]
PriceOpt = Annotated[list[str] | None, typer.Option("--price", help="MODEL=IN,OUT: USD per million input and output tokens of a model the price table lacks (repeatable); a budget needs one for every remote model.")]
TemplateOpt = Annotated[str, typer.Option("--template", "-t", help="Template name or .toml/.json file.")]
OptionOpt = Annotated[list[str] | None, typer.Option("--option", "-o", help="Backend option KEY=VALUE (repeatable).")]
BudgetOpt = Annotated[float | None, typer.Option("--budget", help="Stop before spending more than this many USD.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the cost estimate and stop.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StrategyOpt = Annotated[str, typer.Option("--explainer-strategy", help="Explainer strategy (lookups explainers).")]
ScorerOpt = Annotated[str, typer.Option("--scorer", "-s", help="Scorer (lookups scorers).")]


def _options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _brief(error: ValidationError) -> str:
    """A pydantic error on one line: ``field: problem; ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors())


def _read_json(path: Path, flag: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"{flag} {path}: {error}") from None


def _client(backend: str, options: list[str] | None, budget: float | None, prices: list[str] | None):
    settings = get_settings()
    settings = settings.model_copy(update={"llm_prices": {**settings.llm_prices, **parse_prices(prices or [])}})
    return LLMClient(create_backend(backend, _options(options)), settings=settings, budget=local_budget(budget))


def _show_estimate(client, requests) -> None:
    estimate = client.estimate(requests)
    price = f"${estimate.usd:.4f}" if estimate.priced else "unpriced (not in the price table)"
    err_console.print(f"estimate: {estimate.calls} call(s) to make ({estimate.cached_calls} cached), "
                      f"~{estimate.input_tokens} tokens in, ≤{estimate.max_output_tokens} out, {price}")


def backends(as_json: JsonOpt = False) -> None:
    """List LLM backends from every installed plugin."""

    found = list_backends()
    if as_json:
        return print_json(found)
    table = Table("name", "package", "logprobs", "max context", "JSON mode", "Yes/No by construction",
                  "key env var")
    for b in found:
        table.add_row(b.name, b.package, "yes" if b.logprobs else "no", str(b.max_context or "model"),
                      "yes" if b.json_mode else "no", "yes" if b.constrains_choices else "no", b.key_env_var or "")
    console.print(table)


def templates(as_json: JsonOpt = False) -> None:
    """List prompt templates from every installed plugin."""

    found = list_templates()
    if as_json:
        return print_json(found)
    table = Table("name", "package", "version", "description")
    for t in found:
        table.add_row(t.name, t.package, t.version, t.description)
    console.print(table)


def _plugin_table(found, as_json: bool) -> None:
    if as_json:
        return print_json(found)
    table = Table("name", "package", "description")
    for item in found:
        table.add_row(item.name, item.package, item.description)
    console.print(table)


def explainers(as_json: JsonOpt = False) -> None:
    """List explainer strategies from every installed plugin."""

    _plugin_table(list_strategies(), as_json)


def scorers(as_json: JsonOpt = False) -> None:
    """List explanation scorers from every installed plugin."""

    _plugin_table(list_scorers(), as_json)


def explain(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSON: one request or a list of "
                                        "{token, active_examples, inactive_examples, neuron?, head?}")],
    explainer: ExplainerOpt = DEFAULT_EXPLAINER,
    template: TemplateOpt = "neo2024",
    explainer_strategy: StrategyOpt = "oneshot",
    samples: Annotated[int, typer.Option(min=1, max=16, help="Best of k for a program strategy: answers "
                                         "sampled per head, the best program on the examples kept.")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Temperature of those samples.")] = 0.7,
    option: OptionOpt = None,
    budget: BudgetOpt = None,
    price: PriceOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    backend: OldBackendOpt = None,
    strategy: OldStrategyOpt = None,
) -> None:
    """Explain when each attention head is active (one LLM call per neuron-head pair; k with
    --samples for a program strategy)."""

    data = _read_json(input, "--input")
    try:
        requests = [ExplainRequest.model_validate(d) for d in (data if isinstance(data, list) else [data])]
    except ValidationError as error:
        raise InvalidInputError(f"--input {input}: {_brief(error)}") from None
    prompt_template, chosen = get_template(template), get_strategy(strategy or explainer_strategy)
    client = _client(backend or explainer, option, budget, price)
    k = samples if chosen.programs else 1
    _show_estimate(client, [chosen.request(prompt_template, r).model_copy(
        update={"temperature": temperature, "sample": i} if k > 1 else {}) for r in requests for i in range(k)])
    if dry_run:
        return
    results = run_explain(client, chosen, prompt_template, requests, samples=samples, temperature=temperature)
    if as_json:
        return print_json(results)
    for r in results:
        console.print(f"[bold]{r.neuron or '-'} head {r.head or '-'} ({r.token!r}):[/] {r.text}")
        if r.program is not None:
            console.print(f"training balanced accuracy {r.program.train_accuracy}, sample {r.program.sample} "
                          f"of {len(r.program.sample_accuracies)}: {r.program.error or ''}", highlight=False)
            if r.program.source:
                console.print(Syntax(r.program.source, "python"))


def _explanation(explanation: str | None, explanation_file: Path | None, programs: bool) -> str:
    """The explanation given inline or in a file; a program scorer's is checked before it runs."""
    if (explanation is None) == (explanation_file is None):
        raise InvalidInputError("give the explanation with --explanation TEXT or --explanation-file FILE (one of them)")
    if explanation_file is not None:
        try:
            explanation = explanation_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInputError(f"--explanation-file {explanation_file}: {error}") from None
    assert explanation is not None
    if programs:
        try:
            check_program(explanation)
        except InvalidInputError as error:
            raise InvalidInputError(f"--explanation{'-file ' + str(explanation_file) if explanation_file else ''}: "
                                    f"{error}") from None
    return explanation


def _with_pieces(request: ClassifyRequest, model: str) -> ClassifyRequest:
    """Prompts without ``pieces`` split by the subject model's tokenizer (a program sees them)."""
    if all(p.pieces is not None for p in request.prompts):
        return request
    from services.head_reads import token_pieces
    from services.subject_model import load_tokenizer

    tokenizer = load_tokenizer(model)
    return request.model_copy(update={"prompts": [
        p if p.pieces is not None else p.model_copy(update={"pieces": token_pieces(
            tokenizer, tokenizer(p.text, add_special_tokens=False)["input_ids"])})
        for p in request.prompts]})


def classify(
    prompts_file: Annotated[Path, typer.Option("--prompts-file", "-p", help="JSON: a list of prompts "
                                               "(strings or {text, active, pieces?}), or {token, prompts}")],
    explanation: Annotated[str | None, typer.Option("--explanation", "-e", help="The explanation to judge with.")] = None,
    explanation_file: Annotated[Path | None, typer.Option(
        "--explanation-file", help="The explanation from a file: for --scorer program, a Python file "
        "defining active(text, tokens) -> bool.")] = None,
    model: Annotated[str, typer.Option(help="Subject model whose tokenizer gives the program scorer "
                                       "each prompt's tokens, where the file has no pieces.")] = "smollm2-135m",
    token: Annotated[str | None, typer.Option(help="Appended to each prompt (overrides the file's).")] = None,
    classifier: ClassifierOpt = DEFAULT_JUDGE,
    template: TemplateOpt = "neo2024",
    scorer: ScorerOpt = "zero-shot",
    option: OptionOpt = None,
    budget: BudgetOpt = None,
    price: PriceOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    backend: OldBackendOpt = None,
) -> None:
    """Classify test prompts from an explanation (zero-shot by default), or run a program on
    them (--scorer program --explanation-file F.py); scores them when labels are given."""

    chosen = get_scorer(scorer)
    explanation = _explanation(explanation, explanation_file, chosen.programs)
    data = _read_json(prompts_file, "--prompts-file")
    body = data if isinstance(data, dict) else {"prompts": data}
    if not isinstance(body.get("prompts"), list):
        raise InvalidInputError(f"--prompts-file {prompts_file}: expected a list or {{token, prompts: [...]}}")
    try:
        request = ClassifyRequest.model_validate({
            **body, "explanation": explanation, "token": token if token is not None else body.get("token", ""),
            "prompts": [{"text": p} if isinstance(p, str) else p for p in body["prompts"]],
        })
    except ValidationError as error:
        raise InvalidInputError(f"--prompts-file {prompts_file}: {_brief(error)}") from None
    if chosen.programs:
        request = _with_pieces(request, model)
    prompt_template = get_template(template)
    client = _client(backend or classifier, option, budget, price)
    _show_estimate(client, chosen.requests(prompt_template, request))
    if dry_run:
        return
    result = run_classify(client, chosen, prompt_template, request)
    labelled = all(r.active is not None for r in result.results)
    score = chosen.score(result) if labelled else None
    if as_json:
        typer.echo(json.dumps({"classification": result.model_dump(mode="json"),
                               "score": score.model_dump(mode="json") if score else None}, indent=2))
        return
    table = Table("answer", "P(yes)", "label", "prompt")
    for r in result.results:
        table.add_row(r.answer, "" if r.p_yes is None else f"{r.p_yes:.3f}",
                      "" if r.active is None else str(r.active), r.prompt[-80:])
    console.print(table)
    if score is not None:
        console.print(f"{chosen.name} score: {score.score if score.score is not None else score.skipped}")


def register(app: typer.Typer) -> None:
    for command in (backends, templates, explainers, scorers, explain, classify):
        app.command()(command)
