"""A campaign's results as flat tables (JSON Lines or Parquet), one file per table, so they feed
pandas, ``datasets`` and any other tool without the API.

Every row carries the campaign id and the keys that join it to the others: ``layer``/``neuron``
for a neuron, plus ``head_layer``/``head`` for a head. Nested payloads (a score's confusion counts,
the provenance) are spread into columns where they are flat and kept as JSON text where not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from lookups import HeadClassification, InvalidInputError
from services.campaigns.lifecycle import get_campaign
from services.campaigns.records import neuron_attribution, train_labels
from services.campaigns.stages.scan import train_hits
from services.store import Store
from services.store.models import (
    AblationRow,
    ClassificationRow,
    ExplanationRow,
    HeadRow,
    NeuronRow,
    PromptRow,
    ScoreRow,
    TestSetRow,
)

Format = Literal["jsonl", "parquet"]
Row = dict[str, Any]


def _heads(session: Session, campaign_id: str) -> dict[int, Row]:
    """Head id -> the columns that identify the head."""
    return {h.id: {"campaign_id": campaign_id, "layer": h.layer, "neuron": h.neuron, "head_layer": h.head_layer,
                   "head": h.head}
            for h in session.scalars(select(HeadRow).where(HeadRow.campaign_id == campaign_id))}


def _campaign(session: Session, campaign_id: str) -> Iterator[Row]:
    campaign = get_campaign(session, campaign_id)
    yield {"campaign_id": campaign.id, "name": campaign.name, "status": campaign.status,
           "created_at": campaign.created_at.isoformat(), "config": json.dumps(campaign.config.model_dump(mode="json")),
           "provenance": json.dumps(campaign.provenance or {}), "summary": json.dumps(campaign.summary or {})}


def _neurons(session: Session, campaign_id: str) -> Iterator[Row]:
    for n in session.scalars(select(NeuronRow).where(NeuronRow.campaign_id == campaign_id).order_by(NeuronRow.id)):
        yield {"campaign_id": campaign_id, "layer": n.layer, "neuron": n.neuron, "token": n.token,
               "token_id": n.token_id, "congruence": n.congruence}


def _contexts(session: Session, campaign_id: str) -> Iterator[Row]:
    """Each neuron's top K training documents (a sharded scan's shards merged)."""
    top_k = get_campaign(session, campaign_id).config.top_k
    for n in session.scalars(select(NeuronRow).where(NeuronRow.campaign_id == campaign_id).order_by(NeuronRow.id)):
        for rank, hit in enumerate(train_hits(session, campaign_id, n.layer, n.neuron, top_k)):
            yield {"campaign_id": campaign_id, "split": "train", "layer": n.layer, "neuron": n.neuron, "rank": rank,
                   "doc_id": hit.doc_id, "position": hit.position, "activation": hit.activation}


def _prompts(session: Session, campaign_id: str) -> Iterator[Row]:
    for p in session.scalars(select(PromptRow).where(PromptRow.campaign_id == campaign_id).order_by(PromptRow.id)):
        prompt = p.payload
        yield {"campaign_id": campaign_id, "split": p.split, "layer": p.layer, "neuron": p.neuron, "rank": p.rank,
               "doc_id": prompt.doc_id, "text": prompt.text, "tokens": len(prompt.tokens),
               "activation": prompt.activation, "original_activation": prompt.original_activation}


def _head_rows(session: Session, campaign_id: str) -> Iterator[Row]:
    for h in session.scalars(select(HeadRow).where(HeadRow.campaign_id == campaign_id).order_by(HeadRow.id)):
        yield {"campaign_id": campaign_id, "layer": h.layer, "neuron": h.neuron, "head_layer": h.head_layer,
               "head": h.head, "active_fraction": h.active_fraction}


def _explanations(session: Session, campaign_id: str) -> Iterator[Row]:
    heads = _heads(session, campaign_id)
    for e in session.scalars(select(ExplanationRow).where(ExplanationRow.campaign_id == campaign_id)
                             .order_by(ExplanationRow.id)):
        explanation, program = e.payload, e.payload.program
        yield {**heads[e.head_id], "text": e.text, "strategy": explanation.strategy,
               "strategy_version": explanation.strategy_version, "template": explanation.template,
               "template_version": explanation.template_version, "backend": explanation.backend,
               "model": explanation.model, "input_tokens": e.input_tokens, "output_tokens": e.output_tokens,
               "cost_usd": e.cost_usd, "program": program.source if program else None,
               "program_train_accuracy": program.train_accuracy if program else None}


def _scores(session: Session, campaign_id: str) -> Iterator[Row]:
    heads = _heads(session, campaign_id)
    for s in session.scalars(select(ScoreRow).where(ScoreRow.campaign_id == campaign_id).order_by(ScoreRow.id)):
        score = s.payload
        yield {**heads[s.head_id], "scorer": s.scorer, "control": s.control, "score": score.score,
               "tp": score.tp, "fn": score.fn, "tn": score.tn, "fp": score.fp, "unparseable": score.unparseable,
               "skipped": score.skipped, "ci95_low": score.ci95[0] if score.ci95 else None,
               "ci95_high": score.ci95[1] if score.ci95 else None}


def _test_prompts(session: Session, campaign_id: str) -> Iterator[Row]:
    """Per head and held-out prompt: its text and label, and every scorer's answer and P(Yes) from
    the head's explanation and from the shuffled control's (``SCORER_answer``,
    ``SCORER_control_p_yes``, ...): every score can be recomputed from these rows."""
    heads = _heads(session, campaign_id)
    answers: dict[int, dict[str, HeadClassification]] = {}
    for c in session.scalars(select(ClassificationRow).where(ClassificationRow.campaign_id == campaign_id)):
        answers.setdefault(c.head_id, {})[c.scorer + ("_control" if c.control else "")] = c.payload
    for t in session.scalars(select(TestSetRow).where(TestSetRow.campaign_id == campaign_id).order_by(TestSetRow.id)):
        test_set = t.payload
        for index, prompt in enumerate(test_set.prompts):
            row = {**heads[t.head_id], "index": index, "doc_id": prompt.prompt.doc_id, "text": prompt.prompt.text,
                   "active": prompt.active, "effect": prompt.effect, "sampling": test_set.sampling,
                   "activity": test_set.activity}
            for name, classified in sorted(answers.get(t.head_id, {}).items()):
                result = classified.results[index] if index < len(classified.results) else None
                row[f"{name}_answer"] = result.answer if result else None
                row[f"{name}_p_yes"] = result.p_yes if result else None
            yield row


def _train_prompts(session: Session, campaign_id: str) -> Iterator[Row]:
    """Per neuron, training prompt and head worth explaining: the head's attribution there and
    its label by the campaign's activity definition (what the explainer and the probe saw)."""
    config = get_campaign(session, campaign_id).config
    for h in session.scalars(select(HeadRow).where(HeadRow.campaign_id == campaign_id).order_by(HeadRow.id)):
        attribution = neuron_attribution(session, campaign_id, h.layer, h.neuron)
        labels = train_labels(session, campaign_id, h, config)
        for rank, (prompt, active) in enumerate(zip(attribution.prompts, labels)):
            yield {"campaign_id": campaign_id, "layer": h.layer, "neuron": h.neuron, "head_layer": h.head_layer,
                   "head": h.head, "rank": rank, "doc_id": prompt.doc_id, "text": prompt.text, "active": active,
                   "attribution": prompt.scores[h.head_layer][h.head]}


def _ablations(session: Session, campaign_id: str) -> Iterator[Row]:
    heads = _heads(session, campaign_id)
    for a in session.scalars(select(AblationRow).where(AblationRow.campaign_id == campaign_id)
                             .order_by(AblationRow.id)):
        ks = a.payload.ks
        yield {**heads[a.head_id], "ks_statistic": ks.statistic if ks else None,
               "ks_pvalue": ks.pvalue if ks else None, "n_active": ks.n_active if ks else None,
               "n_inactive": ks.n_inactive if ks else None}


TABLES = {
    "campaign": _campaign, "neurons": _neurons, "contexts": _contexts, "prompts": _prompts, "heads": _head_rows,
    "explanations": _explanations, "scores": _scores, "ablations": _ablations,
    "test_prompts": _test_prompts, "train_prompts": _train_prompts,
}


def export_campaign(store: Store, campaign_id: str, directory: Path, fmt: Format) -> dict[str, int]:
    """Write every table of the campaign under ``directory``; returns rows written per table."""
    if fmt not in ("jsonl", "parquet"):
        raise InvalidInputError(f"export format must be jsonl or parquet, got {fmt!r}")
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    with store.session() as session:
        for name, rows in TABLES.items():
            found = list(rows(session, campaign_id))
            _write(found, directory / f"{name}.{fmt}", fmt)
            written[name] = len(found)
    return written


def _write(rows: list[Row], path: Path, fmt: Format) -> None:
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
