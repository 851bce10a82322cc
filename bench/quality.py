"""Explanation quality: every explainer strategy × scorer × activity definition × test
sampling on the same heads, offline.

One campaign per (strategy, activity, sampling), all with the same subject model, corpus,
neurons and settings, so the GPU stages find the same heads (deterministic) and only the
explanations, labels and test sets differ. Every scorer judges every campaign. Reported per
campaign and scorer: mean E, the shuffled-explanation control, their paired difference with a
bootstrap 95 % CI over heads and the detectable difference, the share of the probe's margin
(with ``probe`` among the scorers), and the judge's calls and tokens; then each strategy against
``oneshot`` on the same heads (paired), and detection against zero-shot (calls and mean E).
Campaigns live in one store, so an interrupted run resumes, and ``lookups summary ID`` shows any
of them.

    .venv/bin/python bench/quality.py --domain owt          # the README campaign
    .venv/bin/python bench/quality.py --domain pydoc        # Python's reference manual
    .venv/bin/python bench/quality.py --llm local:smollm2-f16 --strategies oneshot \
        --scorers zero-shot,probe --activities paper,per-head --samplings first,balanced
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench.pydoc_corpus import write as write_pydoc  # noqa: E402
from services.campaigns.config import CampaignConfig  # noqa: E402
from services.campaigns.execute import run_in_process  # noqa: E402
from services.campaigns.lifecycle import create_campaign  # noqa: E402
from services.campaigns.status_view import progress  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from services.score import ScorerSummary, bootstrap_ci  # noqa: E402
from services.store import Store  # noqa: E402
from services.store.models import (  # noqa: E402
    Campaign,
    ClassificationRow,
    ExplanationRow,
    HeadRow,
    ScoreRow,
)

DOMAINS = {
    # the README campaign: neurons ' right', ' too' and layer 29's 1135
    "owt": (str(ROOT.parent / "shared" / "corpora" / "openwebtext-1k.jsonl.gz"), "27:1263,27:876,29:1135"),
    # ' right', ' order', ' only' (the SmolLM2 neurons of docs/method.md step 1) on Python's reference manual
    "pydoc": (None, "27:1263,27:831,25:290"),
}


def run_campaign(store: Store, config: CampaignConfig) -> str:
    """The store's campaign of this name, resumed, or a new one."""
    with store.session() as session:
        found = session.scalar(select(Campaign.id).where(Campaign.name == config.name))
    campaign_id = found or create_campaign(store, config)
    started, last = time.perf_counter(), ""

    def report(*_):
        nonlocal last
        state = progress(store, campaign_id)
        line = " ".join(f"{s.stage} {s.done}/{s.total}" for s in state.stages if s.total)
        if line != last:
            print(f"  [{time.perf_counter() - started:6.0f} s] {line}", flush=True)
            last = line

    state = run_in_process(store, campaign_id, Runtime(), on_item=report)
    if state.status != "completed":
        raise SystemExit(f"campaign {campaign_id} ended {state.status}: {state.error}")
    print(f"  {config.name}: {campaign_id} in {time.perf_counter() - started:.0f} s", flush=True)
    return campaign_id


def head_scores(store: Store, campaign_id: str, scorer: str, control: bool) -> dict[str, float]:
    """Head key → score of one scorer (skipped heads left out)."""
    with store.session() as session:
        rows = session.execute(select(HeadRow, ScoreRow).join(ScoreRow, ScoreRow.head_id == HeadRow.id).where(
            ScoreRow.campaign_id == campaign_id, ScoreRow.scorer == scorer, ScoreRow.control.is_(control)))
        return {head.key: score.payload.score for head, score in rows
                if score.score is not None}


def judge_cost(store: Store, campaign_id: str, scorer: str) -> dict[str, int]:
    """Calls the judge was asked (cache hits included) and those it answered afresh, with tokens."""
    with store.session() as session:
        rows = list(session.scalars(select(ClassificationRow).where(
            ClassificationRow.campaign_id == campaign_id, ClassificationRow.scorer == scorer)))
    calls = [call for row in rows for call in row.payload.calls]
    return {"calls": len(calls), "fresh_calls": sum(not c.cache_hit for c in calls),
            "input_tokens": sum(r.input_tokens for r in rows), "output_tokens": sum(r.output_tokens for r in rows)}


def paired(a: dict[str, float], b: dict[str, float]) -> dict:
    """Mean of a - b over the heads both score, with a bootstrap 95 % CI."""
    common = sorted(set(a) & set(b))
    diffs = [a[k] - b[k] for k in common]
    if not diffs:
        return {"n": 0, "mean": None, "ci95": None}
    return {"n": len(diffs), "mean": sum(diffs) / len(diffs), "ci95": bootstrap_ci(diffs)}


def fmt(value, signed=False) -> str:
    return "–" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"


def ci(pair) -> str:
    return "–" if pair is None else f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="owt")
    parser.add_argument("--neurons", help="Default: the domain's three neurons.")
    parser.add_argument("--llm", default="local:qwen2.5-coder-1.5b", help="Explainer and judge.")
    parser.add_argument("--strategies", default="oneshot,contrastive,agent")
    parser.add_argument("--agent-rounds", type=int, default=3)
    parser.add_argument("--agent-neurons", help="Run the agent on these neurons only (its heads are then a subset "
                        "of the others', compared on the heads in common); default: all.")
    parser.add_argument("--scorers", default="zero-shot,probe,detection,logprob-auc,causal")
    parser.add_argument("--activities", default="paper", help="Comma-separated: paper, per-head.")
    parser.add_argument("--samplings", default="balanced", help="Comma-separated: first, balanced.")
    parser.add_argument("--test-prompts-per-head", type=int, default=10)
    parser.add_argument("--max-train-docs", type=int, default=200)
    parser.add_argument("--max-test-docs", type=int, default=100)
    parser.add_argument("--context-length", type=int, default=128)
    parser.add_argument("--store", default=str(ROOT / "bench" / "quality.sqlite"),
                        help="SQLite file holding the campaigns (kept, so a rerun resumes).")
    parser.add_argument("--out", type=Path, help="Write the figures as JSON here too.")
    args = parser.parse_args()

    corpus, neurons = DOMAINS[args.domain]
    if corpus is None:
        corpus = str(write_pydoc(Path(tempfile.gettempdir()) / "lookups-pydoc.jsonl.gz"))
    strategies, scorers = args.strategies.split(","), args.scorers.split(",")
    store = Store(f"sqlite:///{args.store}")
    campaigns = {}
    settings = [(a, s) for a in args.activities.split(",") for s in args.samplings.split(",")]
    for strategy in strategies:
        for activity, sampling in settings:
            # the key names the strategy alone when one setting runs (as earlier tables did)
            key = strategy if len(settings) == 1 else f"{strategy} {activity} {sampling}"
            config = CampaignConfig(
                name=f"quality-{args.domain}-{strategy}-{args.llm}-{activity}-{sampling}"
                     f"-{args.test_prompts_per_head}", corpus=corpus,
                neurons=((strategy == "agent" and args.agent_neurons) or args.neurons or neurons).split(","),
                max_train_docs=args.max_train_docs,
                max_test_docs=args.max_test_docs, context_length=args.context_length,
                explainer=args.llm, classifier=args.llm, explainer_strategy=strategy, scorers=scorers,
                agent_rounds=args.agent_rounds, activity=activity, test_sampling=sampling,
                test_prompts_per_head=args.test_prompts_per_head, ablation=False)
            print(f"campaign {config.name}", flush=True)
            campaigns[key] = run_campaign(store, config)

    figures: dict = {"domain": args.domain, "llm": args.llm, "campaigns": campaigns, "rows": [], "vs_oneshot": [],
                     "detection_vs_zero_shot": []}
    print(f"\n### {args.domain}: explainer and judge {args.llm}\n")
    print("| campaign | scorer | heads | mean E | shuffled E | real − shuffled | 95 % CI | detectable "
          "| share of the probe's margin | unparseable | judge calls (fresh) | tokens in / out |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for strategy, campaign_id in campaigns.items():
        with store.session() as session:
            summaries = session.get(Campaign, campaign_id).summary["scorers"]
        for scorer in scorers:
            s = ScorerSummary.model_validate(summaries[scorer])
            cost = judge_cost(store, campaign_id, scorer)
            figures["rows"].append({"strategy": strategy, "scorer": scorer, **s.model_dump(mode="json"), **cost})
            share = s.probe_share.fraction if s.probe_share else None
            share_text = f"{100 * share:.0f} % ({s.probe_share.n_heads} heads)" if s.probe_share and share else "–"
            print(f"| {strategy} | {scorer} | {s.explanations.n_scored} | {fmt(s.explanations.mean)} | "
                  f"{fmt(s.control.mean)} | {fmt(s.paired.mean, True)} | {ci(s.paired.ci95)} | "
                  f"{fmt(s.paired.detectable)} | {share_text} | "
                  f"{s.explanations.n_unparseable}/{s.explanations.n_answers} | "
                  f"{cost['calls']} ({cost['fresh_calls']}) | {cost['input_tokens']} / {cost['output_tokens']} |")

    if "oneshot" in campaigns and len(campaigns) > 1:
        print("\n| strategy − oneshot, same heads | scorer | heads | mean difference | 95 % CI |")
        print("| --- | --- | ---: | ---: | --- |")
        for strategy in (s for s in campaigns if s != "oneshot"):
            for scorer in scorers:
                diff = paired(head_scores(store, campaigns[strategy], scorer, False),
                              head_scores(store, campaigns["oneshot"], scorer, False))
                figures["vs_oneshot"].append({"strategy": strategy, "scorer": scorer, **diff})
                print(f"| {strategy} | {scorer} | {diff['n']} | {fmt(diff['mean'], True)} | {ci(diff['ci95'])} |")

    if {"zero-shot", "detection"} <= set(scorers):
        print("\n| strategy | zero-shot calls | detection calls | ratio "
              "| detection − zero-shot E (same heads) | 95 % CI |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for strategy, campaign_id in campaigns.items():
            zero, detection = judge_cost(store, campaign_id, "zero-shot"), judge_cost(store, campaign_id, "detection")
            diff = paired(head_scores(store, campaign_id, "detection", False),
                          head_scores(store, campaign_id, "zero-shot", False))
            ratio = zero["calls"] / detection["calls"] if detection["calls"] else None
            figures["detection_vs_zero_shot"].append({"strategy": strategy, "zero_shot_calls": zero["calls"],
                                                      "detection_calls": detection["calls"], **diff})
            print(f"| {strategy} | {zero['calls']} | {detection['calls']} | {fmt(ratio)}× | "
                  f"{fmt(diff['mean'], True)} | {ci(diff['ci95'])} |")

    print("\nexplanations of the first three heads:")
    for strategy, campaign_id in campaigns.items():
        with store.session() as session:
            rows = session.execute(select(HeadRow, ExplanationRow.text).join(
                ExplanationRow, ExplanationRow.head_id == HeadRow.id).where(
                HeadRow.campaign_id == campaign_id).order_by(HeadRow.id).limit(3)).all()
            for head, text in rows:
                print(f"- {strategy} {head.key}: {' '.join(text.split())}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
