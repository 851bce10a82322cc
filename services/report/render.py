"""Render a campaign's results (services.campaigns.results) as HTML."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from services.campaigns.results import CampaignResults, NeuronResult, campaign_results
from services.campaigns.status_view import SHOWN_FAILURES
from services.report.plots import attribution_heatmap, score_distribution
from services.settings import get_settings
from services.store import Store
from services.store.models import WorkItem
from services.store.statuses import ItemStatus
from services.subject_model import PACKAGED_MODELS, dequantized_checkpoint

TOP_CONTEXTS = 10


class ShownPrompt(BaseModel):
    """A truncated prompt split so the firing token (its last token) can be highlighted."""

    before: str
    firing: str
    activation: float


class ShownNeuron(BaseModel):
    r: NeuronResult
    prompts: list[ShownPrompt]
    heatmap: str | None


def _tokenizer(model: str):
    """The subject model's tokenizer, to cut off the firing token exactly; None if unavailable
    (then the whole prompt is shown unsplit)."""
    from transformers import AutoTokenizer

    try:
        if model in PACKAGED_MODELS:
            return AutoTokenizer.from_pretrained(dequantized_checkpoint(model, get_settings())[0])
        return AutoTokenizer.from_pretrained(model)
    except Exception:  # offline hub name, moved checkpoint: show the prompt without the split
        return None


def _split(text: str, tokens: list[int], tokenizer) -> tuple[str, str]:
    if tokenizer is None:
        return text, ""
    before = tokenizer.decode(tokens[:-1])
    if not text.startswith(before):
        return text, ""
    return before, text[len(before):]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _neuron(result: NeuronResult, tokenizer) -> ShownNeuron:

    prompts = [ShownPrompt(before=b, firing=f, activation=p.activation)
               for p in result.prompts[:TOP_CONTEXTS] for b, f in [_split(p.text, p.tokens, tokenizer)]]
    heatmap = None
    if result.mean_attribution:
        heatmap = attribution_heatmap(
            result.mean_attribution,
            f"neuron {result.layer}:{result.neuron} {result.token!r}: head attribution "
            f"({result.attribution_definition})",
            [(h.head_layer, h.head) for h in result.heads])
    return ShownNeuron(r=result, prompts=prompts, heatmap=heatmap)


def scan_throughput(store: Store, campaign_id: str) -> str | None:
    """The scan's documents, tokens and tokens/s (per item, and over the wall-clock time its
    items took together), from its items' recorded progress; None before a scan has any."""
    with store.session() as session:
        items = session.execute(select(WorkItem.started_at, WorkItem.finished_at, WorkItem.progress).where(
            WorkItem.campaign_id == campaign_id, WorkItem.stage == "scan", WorkItem.status == ItemStatus.DONE,
            WorkItem.progress.is_not(None))).all()
    if not items:
        return None
    done = [p for _, _, p in items if p is not None]
    tokens, busy = sum(p.tokens for p in done), sum(p.elapsed_s for p in done)
    wall = (max(f for _, f, _ in items if f) - min(s for s, _, _ in items if s)).total_seconds()
    overall = f", {tokens / wall:,.0f} tokens/s over its {wall:.1f} s wall clock" if wall > 0 else ""
    per_item = f", {tokens / busy:,.0f} tokens/s per item" if busy > 0 else ""
    return f"{sum(p.done for p in done)} documents, {tokens:,} tokens in {len(done)} item(s){per_item}{overall}"


def render_results(results: CampaignResults, baseline: CampaignResults | None = None,
                   scan: str | None = None) -> str:
    """``scan``: the scan's throughput line (``scan_throughput``)."""
    import jinja2

    series = {"explanations": results.scores, "shuffled-explanation control": results.control_scores}
    if baseline is not None:
        series[f"random-neuron baseline ({baseline.campaign.name})"] = baseline.scores
    summaries = [("explanations", results.summary.explanations),
                 ("shuffled-explanation control", results.summary.control)]
    if baseline is not None:
        summaries.append(("random-neuron baseline", baseline.summary.explanations))
    tokenizer = _tokenizer(results.config.model) if results.neurons else None
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    model = results.provenance.get("model", {})
    train = results.provenance.get("corpus_train", {})
    return environment.get_template("report.html.j2").render(
        r=results, fmt=_fmt, python=_python, code_css=code_css(), top_contexts=TOP_CONTEXTS, summaries=summaries,
        shown_failures=SHOWN_FAILURES,
        model=f"{model.get('name', results.config.model)} ({model.get('architecture', '?')}, "
              f"{model.get('n_layers', '?')} layers × {model.get('n_heads', '?')} heads, {model.get('dtype', '?')})",
        corpus=f"{train.get('n_documents', '?')} train documents, "
               f"fingerprint {str(train.get('fingerprint', '?'))[:12]}",
        distribution=score_distribution(series) if any(series.values()) else None,
        neurons=[_neuron(n, tokenizer) for n in results.neurons],
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), scan=scan,
    )


CODE_CLASS = "code"


def _python(source: str):
    """A program as highlighted HTML: pygments escapes it and marks tokens with classes, styled by
    ``code_css`` in the report's one style block (its content-security policy admits that block
    by hash and no inline style attribute)."""
    from markupsafe import Markup
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return Markup(highlight(source, PythonLexer(), HtmlFormatter(cssclass=CODE_CLASS)))  # noqa: S704 - pygments escapes


def code_css() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass=CODE_CLASS).get_style_defs(f".{CODE_CLASS}")


def render_report(store: Store, campaign_id: str, baseline_id: str | None = None) -> str:
    """The whole campaign (every neuron), with a random-neuron baseline campaign overlaid if given."""
    baseline = campaign_results(store, baseline_id) if baseline_id else None
    return render_results(campaign_results(store, campaign_id), baseline, scan_throughput(store, campaign_id))
