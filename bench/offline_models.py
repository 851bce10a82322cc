"""The offline models as explainer and judge on one campaign (issue 25; bench/RESULTS.md).

``fork SOURCE TARGET --explainer X --classifier Y``: a consistent copy (SQLite's backup) of a
campaign's store, taken any time after its attribute stage finished, without its LLM stages'
results (explanations, agent rounds, classifications, scores and their work items), naming other
models; ``lookups run --resume ID`` on the copy then runs the LLM stages, and whatever subject-
model items (test prompts, ablations) were not done yet. The subject-model stages are the same
for every candidate, and on 2 shared cores they take most of a campaign.

``table STORE...``: one Markdown row per store, finished or not: explanations that repeat an
8-word run (as stored; how many the local backend cut), the zero-shot scorer's mean E over the
heads judged so far, the shuffled control, their paired difference, the judge's answers, the
AUC of its P(Yes) pooled over the real explanations' prompts, and the wall time of the explain
and classify stages (first item started to last item finished).

    .venv/bin/python bench/offline_models.py fork /tmp/a.sqlite /tmp/b.sqlite --explainer X --classifier Y
    LOOKUPS_RESULTS_URL=sqlite:////tmp/b.sqlite .venv/bin/lookups run --resume latest
    .venv/bin/python bench/offline_models.py table /tmp/a.sqlite /tmp/b.sqlite
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from sqlalchemy import delete, func, select

from plugins.backends.llama_chat import repeat_start
from services.campaigns.stages import STAGE_NAMES
from services.llm.registry import get_scorer
from services.score import auc, bootstrap_ci
from services.store import Store
from services.store.models import (
    AgentRoundRow,
    Campaign,
    ClassificationRow,
    ExplanationRow,
    ScoreRow,
    WorkItem,
)

LLM_STAGES = ("explain_batch", "explain", "agent", "classify_batch", "classify", "score")
LAST_SUBJECT_STAGE = "ablate"  # the stage before explain_batch (services.campaigns.stages)


def fork(source: Path, target: Path, explainer: str, classifier: str) -> str:
    """Copy ``source`` to ``target`` with its LLM stages undone and the models replaced."""
    with sqlite3.connect(source) as reading, sqlite3.connect(target) as writing:
        reading.backup(writing)
    store = Store(f"sqlite:///{target}")
    with store.session() as session:
        campaign = session.scalars(select(Campaign)).one()
        attributed = session.scalars(select(WorkItem.status).where(
            WorkItem.campaign_id == campaign.id, WorkItem.stage == "attribute")).all()
        if not attributed or any(status != "done" for status in attributed):
            raise SystemExit(f"{source}: campaign {campaign.id} has not finished its attribute stage")
        for table in (ExplanationRow, AgentRoundRow, ClassificationRow, ScoreRow):
            session.execute(delete(table).where(table.campaign_id == campaign.id))
        session.execute(delete(WorkItem).where(WorkItem.campaign_id == campaign.id, WorkItem.stage.in_(LLM_STAGES)))
        campaign.config = campaign.config.model_copy(update={"explainer": explainer, "classifier": classifier})
        campaign.summary = {k: v for k, v in (campaign.summary or {}).items() if k != "scorers"}
        if STAGE_NAMES.index(campaign.stage) > STAGE_NAMES.index(LAST_SUBJECT_STAGE):
            campaign.stage = LAST_SUBJECT_STAGE
        campaign.status = "running"
        return campaign.id


def stage_seconds(session, campaign_id: str, stage: str) -> float | None:
    started, finished = session.execute(select(func.min(WorkItem.started_at), func.max(WorkItem.finished_at)).where(
        WorkItem.campaign_id == campaign_id, WorkItem.stage == stage)).one()
    return (finished - started).total_seconds() if started and finished else None


def row(path: Path) -> str:
    store = Store(f"sqlite:///{path}")
    scorer = get_scorer("zero-shot")
    with store.session() as session:
        campaign = session.scalars(select(Campaign)).one()
        config = campaign.config
        explanations = session.execute(select(ExplanationRow.text, ExplanationRow.payload).where(
            ExplanationRow.campaign_id == campaign.id)).all()
        judged = session.execute(select(ClassificationRow.head_id, ClassificationRow.control,
                                        ClassificationRow.payload).where(
            ClassificationRow.campaign_id == campaign.id, ClassificationRow.scorer == scorer.name)).all()
        times = [stage_seconds(session, campaign.id, stage) for stage in ("explain", "classify")]
    looping = sum(repeat_start(text) is not None for text, _ in explanations)
    cut = sum(payload.cut is not None for _, payload in explanations)
    heads = {(head_id, control): payload for head_id, control, payload in judged}
    scores = {key: scorer.score(head).score for key, head in heads.items()}
    real = [s for (_, control), s in scores.items() if not control and s is not None]
    shuffled = [s for (_, control), s in scores.items() if control and s is not None]
    paired = [scores[(h, False)] - scores[(h, True)] for h, control in scores
              if control and scores[(h, True)] is not None and scores.get((h, False)) is not None]
    answers = [r.answer for head in heads.values() for r in head.results if r.active is not None]
    pooled, _ = auc([head for (_, control), head in heads.items() if not control])
    yes = answers.count("yes")
    interval = bootstrap_ci(paired)
    ci = "({:+.3f}, {:+.3f})".format(*interval) if interval is not None else ""
    cells = [path.name, config.explainer, config.classifier, campaign.status,
             f"{looping} of {len(explanations)} ({cut} cut)", f"{len(real)}",
             _mean(real), _mean(shuffled), f"{_mean(paired, '+.3f')} {ci}",
             f"{yes} / {answers.count('no')} / {answers.count('unparseable')}", _mean([pooled] if pooled else []),
             *(f"{t:.0f}" if t is not None else "-" for t in times)]
    return "| " + " | ".join(cells) + " |"


def _mean(values: list[float], spec: str = ".3f") -> str:
    return format(sum(values) / len(values), spec) if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    forking = commands.add_parser("fork", help="copy a finished store without its LLM stages' results")
    forking.add_argument("source", type=Path)
    forking.add_argument("target", type=Path)
    forking.add_argument("--explainer", required=True)
    forking.add_argument("--classifier", required=True)
    tabling = commands.add_parser("table", help="the Markdown table of finished stores")
    tabling.add_argument("stores", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "fork":
        print(fork(args.source, args.target, args.explainer, args.classifier))
        return
    print("| store | explainer | judge | status | explanations repeating an 8-word run | heads judged "
          "| mean E | shuffled | paired difference (95 % CI) | answers yes / no / unparseable (real and shuffled) "
          "| AUC of P(Yes) | explain stage s | classify stage s |")
    print("|" + " --- |" * 13)
    for path in args.stores:
        print(row(path))


if __name__ == "__main__":
    main()
