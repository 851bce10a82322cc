"""``lookups run``, ``lookups estimate`` and ``lookups report``: a campaign on this machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli._common import parse_prices, print_json, worth_range
from lookups import InvalidInputError
from services.campaigns.config import CampaignConfig, load_config, parse_config
from services.campaigns.estimate import CampaignEstimate, estimate_campaign
from services.campaigns.execute import run_in_process
from services.campaigns.lifecycle import ACTIVE, create_campaign, get_campaign, resolve_campaign_id, resume
from services.campaigns.status_view import SHOWN_FAILURES, progress
from services.campaigns.summary import campaign_headline
from services.export import Format, export_campaign
from services.llm.registry import DEFAULT_EXPLAINER, DEFAULT_JUDGE, is_local_backend
from services.report import render_report
from services.runtime import Runtime
from services.settings import get_settings
from services.store import Store
from services.store.statuses import CampaignStatus

console = Console(stderr=True, soft_wrap=True)  # ids and paths stay on one line
EXIT_WITH_FAILURES = 3  # `lookups run`: every stage ran, but some items failed

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Campaign config (.toml or .json); flags override it.")]
NameOpt = Annotated[str | None, typer.Option(help="Campaign name.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Packaged name (default smollm2-135m), local checkpoint dir or hub name.")]
CorpusOpt = Annotated[str | None, typer.Option(help="File, folder or hf:NAME[:CONFIG][?split=S&revision=R&text_column=C], e.g. ../shared/corpora/openwebtext-1k.jsonl.gz or hf:NeelNanda/pile-10k.")]
NeuronsOpt = Annotated[str | None, typer.Option(help="Explicit neurons, e.g. 27:1263,25:290.")]
LayersOpt = Annotated[list[int] | None, typer.Option(help="Layers (default: the model's last three).")]
PerLayerOpt = Annotated[int | None, typer.Option(help="Neurons per layer (default 20).")]
RandomOpt = Annotated[bool, typer.Option("--random", help="The random-neuron baseline.")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed (random baseline, shuffled control).")]
TrainOpt = Annotated[int | None, typer.Option(help="Use at most this many train documents.")]
TestOpt = Annotated[int | None, typer.Option(help="Use at most this many test documents.")]
ContextOpt = Annotated[int | None, typer.Option(help="Tokens per document, BOS included (default 1024).")]
TestPromptsOpt = Annotated[int | None, typer.Option(help="Held-out test prompts per head (default 10): the first N (--test-sampling first) or up to N active and N inactive (balanced).")]
SamplingOpt = Annotated[str | None, typer.Option("--test-sampling", help="balanced (default): up to N active and N inactive test prompts per head, from a test scan of 4 N documents per neuron; first: the paper's, the first N.")]
ActivityOpt = Annotated[str | None, typer.Option("--activity", help="When a head is active on a prompt: paper (default; attribution above mean + 2 std of the prompt's heads) or per-head (above the head's median over its neuron's training prompts).")]
WorthOpt = Annotated[str | None, typer.Option(help="Active-fraction range of heads worth explaining, LOW,HIGH (default 0.25,0.75).")]
ExplainerOpt = Annotated[str | None, typer.Option(help=f"Explainer backend spec (default {DEFAULT_EXPLAINER}), e.g. openai:gpt-4o.")]
ClassifierOpt = Annotated[str | None, typer.Option(help=f"Judge backend spec (default {DEFAULT_JUDGE}: the packaged SmolLM2 from F16 weights).")]
StrategyOpt = Annotated[str | None, typer.Option("--explainer-strategy", help="Explainer strategy (default oneshot; lookups explainers).")]
ScorersOpt = Annotated[list[str] | None, typer.Option("--scorer", help="Scorer, repeatable; the first is the headline (default zero-shot; lookups scorers).")]
BudgetOpt = Annotated[float | None, typer.Option("--budget", help="Stop LLM calls beyond this many USD.")]
PriceOpt = Annotated[list[str] | None, typer.Option("--price", help="MODEL=IN,OUT: USD per million input and output tokens of a model the price table lacks (repeatable); a budget needs one for every remote model.")]
AblationOpt = Annotated[bool | None, typer.Option("--ablation/--no-ablation", help="Run the ablation check (default on).")]
SamplesOpt = Annotated[int | None, typer.Option("--explainer-samples", help="Best of k: answers a program strategy samples per head, the best program on the training prompts kept (default 4).")]
TemperatureOpt = Annotated[float | None, typer.Option("--explainer-temperature", help="Temperature of those samples (default 0.7).")]
LLMModeOpt = Annotated[str | None, typer.Option("--llm-mode", help="live (default) or batch: the explain and classify stages' requests go out as one provider batch each (openai, anthropic backends), half the price, answered within hours; polled every LOOKUPS_LLM_BATCH_POLL_S seconds, resumable with --resume.")]


def build_config(config: Path | None, **flags):
    """The config file (if any) with every given flag on top; flags left out keep its values."""

    overrides = {key: value for key, value in flags.items() if value is not None}
    if "neurons" in overrides:
        overrides["neurons"] = [n.strip() for n in overrides["neurons"].split(",") if n.strip()]
    if "llm_prices" in overrides:
        overrides["llm_prices"] = parse_prices(overrides["llm_prices"])
    if "worth_range" in overrides:
        overrides["worth_range"] = worth_range(overrides["worth_range"])
    if config is not None:
        return load_config(config, overrides)
    if "corpus" not in overrides:
        raise InvalidInputError("give a corpus with --corpus (or a --config file that names one)")
    return parse_config(overrides, source="flags")


def _config(config, name, model, corpus, neurons, layers, per_layer, random, seed, max_train_docs,
            max_test_docs, context_length, test_prompts_per_head, worth_range, explainer, classifier,
            strategy, scorers, budget, ablation, prices=None, llm_mode=None, samples=None, temperature=None,
            test_sampling=None, activity=None):
    return build_config(
        config, name=name, model=model, corpus=corpus, neurons=neurons, layers=layers or None,
        per_layer=per_layer, baseline="random" if random else None, seed=seed,
        max_train_docs=max_train_docs, max_test_docs=max_test_docs, context_length=context_length,
        test_prompts_per_head=test_prompts_per_head, test_sampling=test_sampling, activity=activity,
        worth_range=worth_range, explainer=explainer,
        classifier=classifier, explainer_strategy=strategy, scorers=scorers or None,
        budget_usd=budget, ablation=ablation, llm_prices=prices or None, llm_mode=llm_mode,
        explainer_samples=samples, explainer_temperature=temperature)


def work_cell(work) -> str:
    """Progress inside a stage's long items: documents done, tokens/s, ETA."""
    if work is None:
        return ""
    rate = f", {work.tokens_per_s:,.0f} tok/s" if work.tokens_per_s is not None else ""
    eta = f", ETA {work.eta_s:.0f} s" if work.eta_s is not None and work.done < work.total else ""
    return f"{work.done}/{work.total} {work.unit}{rate}{eta}"


def progress_table(state) -> Table:
    table = Table(title=f"campaign {state.id} ({state.name}): {state.status}", title_justify="left")
    for column in ("stage", "done", "total", "failed", "inside items"):
        table.add_column(column, justify="left" if column in ("stage", "inside items") else "right")
    for stage in state.stages:
        marker = "▶ " if state.status == CampaignStatus.RUNNING and stage.running + stage.pending else "  "
        table.add_row(marker + stage.stage, str(stage.done), str(stage.total), str(stage.failed),
                      work_cell(stage.work))
    eta = f", ETA {state.eta_s:.0f} s" if state.eta_s is not None else ""
    table.caption = (f"tokens {state.input_tokens} in / {state.output_tokens} out, "
                     f"cost ${state.cost_usd:.4f}{eta}")
    table.caption_justify = "left"
    return table


class LiveProgress:
    """The progress table, read from the store again at most every ``every_s`` seconds: Live
    redraws it several times a second, so it moves while a long item (a scan) runs."""

    def __init__(self, store: Store, campaign_id: str, every_s: float = 1.0):
        self.store, self.campaign_id, self.every_s = store, campaign_id, every_s
        self._read_at = -every_s
        self._table: Table | None = None

    def __rich__(self) -> Table:
        now = time.monotonic()
        if self._table is None or now - self._read_at >= self.every_s:
            self._read_at = now
            try:
                self._table = progress_table(progress(self.store, self.campaign_id))
            except Exception:  # the store busy with a write (Live draws from its own thread)
                if self._table is None:
                    raise
        return self._table


def estimate_line(found: CampaignEstimate) -> str:
    """What the LLM side will cost at most, said before anything runs."""
    tokens_in = found.explain.input_tokens + found.classify.input_tokens
    tokens_out = found.explain.max_output_tokens + found.classify.max_output_tokens
    cached = found.explain.cached_calls + found.classify.cached_calls
    assuming = "" if found.exact else f" (assuming {'; '.join(found.assumptions)})"
    return (f"estimate: {found.calls} LLM calls ({cached} cached), about {tokens_in} input tokens, at most "
            f"{tokens_out} output tokens, at most ${found.usd:.4f}{assuming}")


def default_llm_concurrency(config: CampaignConfig, remote: int) -> int:
    """LLM items at once when ``--llm-concurrency`` is not given: ``remote``, or one when every
    LLM of the campaign runs on this machine. A local model answers one call at a time anyway,
    and its prompt-prefix cache only pays when one head's judge prompts come in a row (run side
    by side, the README campaign's classify stage took 1.6x as long)."""
    return 1 if all(is_local_backend(spec) for spec in (config.explainer, config.classifier)) else remote


def failure_lines(state, resume: str) -> list[str]:
    """The failed items whose results are missing (those a resume retries), and how to resume."""
    if not state.failures:
        return []
    more = " (the first few; the table counts them all)" if len(state.failures) >= SHOWN_FAILURES else ""
    lines = [f"failed items{more}:"]
    lines += [f"  {f.stage} {f.key} (item {f.id}, {f.attempts} attempt(s)): {f.error}" for f in state.failures]
    lines.append(f"retry them with: {resume} {state.id}")
    return lines


def run(
    config: ConfigOpt = None, name: NameOpt = None, model: ModelOpt = None, corpus: CorpusOpt = None,
    neurons: NeuronsOpt = None, layers: LayersOpt = None, per_layer: PerLayerOpt = None,
    random: RandomOpt = False, seed: SeedOpt = None, max_train_docs: TrainOpt = None,
    max_test_docs: TestOpt = None, context_length: ContextOpt = None,
    test_prompts_per_head: TestPromptsOpt = None, test_sampling: SamplingOpt = None,
    activity: ActivityOpt = None, worth_range: WorthOpt = None,
    explainer: ExplainerOpt = None, classifier: ClassifierOpt = None,
    strategy: StrategyOpt = None, scorer: ScorersOpt = None, budget: BudgetOpt = None,
    price: PriceOpt = None, ablation: AblationOpt = None, llm_mode: LLMModeOpt = None,
    explainer_samples: SamplesOpt = None, explainer_temperature: TemperatureOpt = None,
    llm_concurrency: Annotated[int | None, typer.Option(help="LLM items in flight at once (default LOOKUPS_LLM_MAX_CONCURRENCY, 8; one when the explainer and judge are both local models); each backend still makes at most its own max_concurrency calls at once (a local model: one).")] = None,
    resume_id: Annotated[str | None, typer.Option("--resume", help="Continue this campaign, or 'latest' (after Ctrl-C, a failure or cancel; or retry the failed items of one completed with failures).")] = None,
) -> None:
    """Run a whole campaign in this process (no Redis), with live progress; Ctrl-C stops it
    cleanly and ``lookups run --resume ID`` continues where it stopped, or retries the failed
    items of a finished campaign. Exit status: 0 completed, 3 completed with failures (some
    items failed: they are listed), 1 failed, 130 interrupted."""
    from rich.live import Live

    settings = get_settings()
    if llm_concurrency is not None and llm_concurrency < 1:
        raise InvalidInputError(f"--llm-concurrency must be at least 1, got {llm_concurrency}")
    store = Store(settings.results_url)
    runtime = Runtime(settings)
    if resume_id is None:
        chosen = _config(config, name, model, corpus, neurons, layers, per_layer, random, seed, max_train_docs,
                         max_test_docs, context_length, test_prompts_per_head, worth_range, explainer,
                         classifier, strategy, scorer, budget, ablation, price, llm_mode,
                         samples=explainer_samples, temperature=explainer_temperature,
                         test_sampling=test_sampling, activity=activity)
        console.print(estimate_line(estimate_campaign(chosen, runtime)), highlight=False)
        campaign_id = create_campaign(store, chosen)
    else:
        campaign_id = resolve_campaign_id(store, resume_id)
        with store.session() as session:
            stored = get_campaign(session, campaign_id)
            status, chosen = stored.status, stored.config
        if status not in (*ACTIVE, CampaignStatus.COMPLETED):
            resume(store, campaign_id)
    console.print(f"campaign [bold]{campaign_id}[/] in store {settings.results_url}")
    if llm_concurrency is None:
        llm_concurrency = default_llm_concurrency(chosen, settings.llm_max_concurrency)
    try:
        with Live(LiveProgress(store, campaign_id), console=console, refresh_per_second=4) as live:
            state = run_in_process(store, campaign_id, runtime, llm_concurrency=llm_concurrency,
                                   on_item=lambda *_: live.refresh())
            live.update(progress_table(state))
    except KeyboardInterrupt:
        console.print(f"\ninterrupted; the store is consistent. Continue with: lookups run --resume {campaign_id}")
        raise typer.Exit(130) from None
    failures = failure_lines(state, "lookups run --resume")
    if state.status == CampaignStatus.FAILED:
        console.print(f"[red]campaign failed:[/] {state.error}")
        for line in failures:
            console.print(line, markup=False, highlight=False)
        raise typer.Exit(1)

    console.print()
    for line in headline_lines(campaign_headline(store, campaign_id)):
        console.print(line, markup=False, highlight=False)
    if state.status == CampaignStatus.COMPLETED_WITH_FAILURES:
        console.print("[yellow]completed with failures:[/] the results of the failed items are missing")
        for line in failures:
            console.print(line, markup=False, highlight=False)
    console.print(f"done. Report: lookups report {campaign_id} -o report.html")
    typer.echo(campaign_id)
    if state.status == CampaignStatus.COMPLETED_WITH_FAILURES:
        raise typer.Exit(EXIT_WITH_FAILURES)


def _interval(ci) -> str:
    return f"95% CI {ci[0]:+.3f} to {ci[1]:+.3f}" if ci else "no CI"


def headline_lines(headline) -> list[str]:
    """Per scorer, one line with the figures to quote: mean E, the shuffled control, their
    paired difference with its interval, the random-neuron baseline, the judge's calls."""
    lines = [f"campaign {headline.id} ({headline.name}): {headline.status}; explainer "
             f"{headline.explainer} ({headline.strategy}), judge {headline.classifier}"]
    for line in headline.scorers:
        s = line.summary
        if s is None:
            lines.append(f"  {line.scorer}: not scored yet")
            continue
        if s.explanations.mean is None:
            lines.append(f"  {line.scorer}: no head could be scored ({s.explanations.n_heads} heads)")
            continue
        text = f"  {line.scorer}: mean E {s.explanations.mean:.3f} over {s.explanations.n_scored} heads"
        text += f", shuffled {s.control.mean:.3f}" if s.control.mean is not None else ", no shuffled control"
        if s.paired.mean is not None:
            text += f"; real − shuffled {s.paired.mean:+.3f} ({_interval(s.paired.ci95)}, {s.paired.n_pairs} heads"
            text += f"; detectable {s.paired.detectable:.3f})" if s.paired.detectable is not None else ")"
        if s.probe_share is not None and s.probe_share.fraction is not None:
            text += (f"; {100 * s.probe_share.fraction:.0f} % of the probe's margin "
                     f"(on the {s.probe_share.n_heads} heads text predicts)")
        if line.baseline_mean is not None:
            text += f"; random-neuron baseline {line.baseline_mean:.3f}"
        text += (f"; {s.calls} judge calls, {s.explanations.n_unparseable} of {s.explanations.n_answers} "
                 "answers unparseable")
        if s.constrained is False:
            text += " (the judge's backend cannot restrict its answers to Yes/No: they are parsed)"
        lines.append(text)
    return lines


def summary(
    campaign: Annotated[str, typer.Argument(help="Campaign id, or 'latest'.")],
    baseline: Annotated[str | None, typer.Option(help="A random-neuron baseline campaign (lookups run --random ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The figures to quote: per scorer, mean E, shuffled-control E, their paired difference
    with its 95% CI, and the random-neuron baseline when given."""

    store = Store(get_settings().results_url)
    headline = campaign_headline(store, resolve_campaign_id(store, campaign), baseline)
    if as_json:
        print_json(headline)
        return
    typer.echo("\n".join(headline_lines(headline)))


def estimate(
    config: ConfigOpt = None, campaign: Annotated[str | None, typer.Option(help="A stored campaign: exact once it is past attribution.")] = None,
    heads_per_neuron: Annotated[float, typer.Option(help="Assumed heads worth explaining per neuron.")] = 3.0,
    model: ModelOpt = None, corpus: CorpusOpt = None, neurons: NeuronsOpt = None,
    layers: LayersOpt = None, per_layer: PerLayerOpt = None, test_prompts_per_head: TestPromptsOpt = None,
    test_sampling: SamplingOpt = None, explainer: ExplainerOpt = None, classifier: ClassifierOpt = None,
    strategy: StrategyOpt = None, scorer: ScorersOpt = None, price: PriceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """LLM calls, tokens and worst-case cost of a campaign, before running it."""

    settings = get_settings()
    store = None
    if campaign is not None:
        store = Store(settings.results_url)
        with store.session() as session:
            chosen = get_campaign(session, campaign).config
    else:
        chosen = build_config(config, model=model, corpus=corpus or "unused", neurons=neurons,
                              layers=layers or None, per_layer=per_layer,
                              test_prompts_per_head=test_prompts_per_head, test_sampling=test_sampling,
                              explainer=explainer,
                              classifier=classifier, explainer_strategy=strategy, scorers=scorer or None,
                              llm_prices=price or None)
    result = estimate_campaign(chosen, Runtime(settings), heads_per_neuron, store, campaign)
    if as_json:
        print_json(result)
        return
    table = Table("stage", "backend", "calls", "cached", "input tokens", "max output tokens", "USD")
    for stage, part in (("explain", result.explain), ("classify", result.classify)):
        table.add_row(stage, f"{part.backend}:{part.model}", str(part.calls), str(part.cached_calls),
                      str(part.input_tokens), str(part.max_output_tokens),
                      f"{part.usd:.4f}" + ("" if part.priced else " (unpriced)"))
    Console().print(table)
    Console().print(f"total: {result.calls} calls, ${result.usd:.4f} worst case"
                    + ("" if result.exact else "\nassuming: " + "; ".join(result.assumptions)))


def report(
    campaign: Annotated[str, typer.Argument(help="Campaign id, or 'latest'.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    baseline: Annotated[str | None, typer.Option(help="A random-neuron baseline campaign to compare against.")] = None,
) -> None:
    """Write the campaign's self-contained HTML report."""

    store = Store(get_settings().results_url)
    output.write_text(render_report(store, resolve_campaign_id(store, campaign), baseline))
    console.print(f"wrote {output}")


def export(
    campaign: Annotated[str, typer.Argument(help="Campaign id, or 'latest'.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the tables into.")] = Path("export"),
    fmt: Annotated[Format, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
) -> None:
    """Write the campaign's results as tables (campaign, neurons, contexts, prompts, heads,
    explanations, scores, ablations), one file each, for pandas or datasets."""
    store = Store(get_settings().results_url)
    written = export_campaign(store, resolve_campaign_id(store, campaign), output, fmt)
    console.print(f"wrote {', '.join(f'{name} ({rows})' for name, rows in written.items())} to {output}/")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(estimate)
    app.command()(report)
    app.command()(summary)
    app.command()(export)
