"""Held-out test sets and the text-probe ceiling, with no LLM: how many prompts of each class the
heads get, how well a text classifier predicts them, and how small a paired difference the test
sets can detect, per activity definition × test sampling × prompts per head.

For each neuron: the training scan, truncation and attribution (the explainer's evidence), then
one test pool of the largest size any setting needs (scan, truncation and attribution of the
test split). The first N prompts of that pool are exactly what ``first`` sampling draws, and
``balanced`` draws from all of it, so every setting is labelled from the same measurements. The
``probe`` scorer then runs per head, with its shuffled control (another head's probe), and the
campaign statistics come from ``services.score`` as in a campaign.

    .venv/bin/python bench/test_power.py --domain owt --model smollm2-135m --per-head 10,15,20
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

from bench.pydoc_corpus import write as write_pydoc  # noqa: E402
from lookups import ClassifyRequest, TestPrompt  # noqa: E402
from services.activity import ACTIVITIES, head_labels  # noqa: E402
from services.attribution import attribute_neuron  # noqa: E402
from services.campaigns.stages.classify import derangement  # noqa: E402
from services.classify import classify  # noqa: E402
from services.corpus import CorpusSelection, fetch_documents, selected_positions, stream_selection  # noqa: E402
from services.held_out import TEST_SAMPLINGS, label_test_prompts, test_pool_size  # noqa: E402
from services.llm.registry import get_scorer, get_template  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from services.scan import scan_corpus  # noqa: E402
from services.schemas import NeuronRef  # noqa: E402
from services.score import paired_difference, summarize  # noqa: E402
from services.truncate import truncate_contexts  # noqa: E402

DOMAINS = {
    "owt": str(ROOT.parent / "shared" / "corpora" / "openwebtext-1k.jsonl.gz"),
    "pydoc": None,  # Python's reference manual, written on first use (bench/pydoc_corpus.py)
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="owt")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--neurons", default="27:1263,27:876,29:1135", help="The README campaign's by default.")
    parser.add_argument("--per-head", default="10,15,20", help="Test prompts per head (per class when balanced).")
    parser.add_argument("--max-train-docs", type=int, default=200)
    parser.add_argument("--max-test-docs", type=int, default=100)
    parser.add_argument("--context-length", type=int, default=128)
    parser.add_argument("--out", type=Path, help="Write the rows as JSON here too.")
    args = parser.parse_args()

    corpus = DOMAINS[args.domain] or str(write_pydoc(Path(tempfile.gettempdir()) / "lookups-pydoc.jsonl.gz"))
    sizes = [int(n) for n in args.per_head.split(",")]
    started = time.perf_counter()
    runtime = Runtime()
    model = runtime.model(args.model)
    neurons = [NeuronRef.parse(n) for n in args.neurons.split(",")]
    pool = max(test_pool_size("balanced", n) for n in sizes)
    splits = {split: CorpusSelection(corpus=corpus, split=split, max_docs=getattr(args, f"max_{split}_docs"))
              for split in ("train", "test")}

    def prompts_of(split: str, top_k: int, per_neuron: int):
        selection = splits[split]
        contexts = scan_corpus(model, neurons, stream_selection(selection), top_k=top_k,
                               context_length=args.context_length, total=len(selected_positions(selection)))
        documents = fetch_documents(selection, {hit.doc_id for c in contexts for hit in c.hits})
        return truncate_contexts(model, contexts, documents, context_length=args.context_length,
                                 prompts_per_neuron=per_neuron)

    train = [attribute_neuron(model, c.neuron, c.prompts or []) for c in prompts_of("train", 30, 20)]
    test = prompts_of("test", pool, pool)
    tested = [attribute_neuron(model, c.neuron, c.prompts or [], definition=a.definition)
              if c.prompts else None for a, c in zip(train, test)]
    print(f"GPU side: {time.perf_counter() - started:.0f} s; heads worth explaining: "
          f"{sum(len(a.worth_explaining) for a in train)}; test pool per neuron: "
          f"{[len(c.prompts or []) for c in test]}", flush=True)

    probe, rows = get_scorer("probe"), []
    client, template = runtime.llm("local", None), get_template("neo2024")  # the probe sends it nothing

    def judge(train_prompts: list[TestPrompt], prompts: list[TestPrompt]):
        return probe.score(classify(client, probe, template, ClassifyRequest(
            explanation="(probe)", prompts=prompts, train=train_prompts)))

    print(f"\n### {args.model} on {args.domain}: the probe, no LLM\n")
    print("| activity | sampling | N | heads scored | active / inactive per head | probe E | shuffled "
          "| probe − shuffled (95 % CI) | detectable |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for activity in ACTIVITIES:
        for sampling in TEST_SAMPLINGS:
            for n in sizes:
                heads = []  # (train prompts with labels, test prompts with labels)
                for a, t, c in zip(train, tested, test):
                    if t is None:
                        continue
                    refs = [h.head for h in a.worth_explaining]
                    # 'first' takes the pool's first n: exactly the pool a 'first' campaign draws
                    for ref, test_set in zip(refs, label_test_prompts(
                            t, c.prompts or [], refs, n, sampling=sampling, activity=activity, train=a)):
                        labels = head_labels(a, ref, activity)
                        heads.append(([TestPrompt(text=p.text, active=x) for p, x in zip(a.prompts, labels)],
                                      [TestPrompt(text=p.prompt.text, active=p.active) for p in test_set.prompts]))
                heads = [h for h in heads if len({p.active for p in h[1]}) == 2]
                if len(heads) < 2:
                    print(f"| {activity} | {sampling} | {n} | {len(heads)} | – | – | – | – | – |")
                    continue
                donors = derangement(len(heads))
                real = [judge(tr, te) for tr, te in heads]
                control = [judge(heads[d][0], te) for (_, te), d in zip(heads, donors)]
                e, shuffled = summarize(real), summarize(control)
                paired = paired_difference(list(zip(real, control)))
                counts = (sum(s.n_active for s in real) / len(real), sum(s.n_inactive for s in real) / len(real))
                rows.append({"model": args.model, "domain": args.domain, "activity": activity, "sampling": sampling,
                             "per_head": n, "heads": len(heads), "mean_active": counts[0], "mean_inactive": counts[1],
                             "probe": e.mean, "shuffled": shuffled.mean, "paired": paired.model_dump()})
                ci = f"({paired.ci95[0]:+.3f}, {paired.ci95[1]:+.3f})" if paired.ci95 else ""
                detectable = f"{paired.detectable:.3f}" if paired.detectable is not None else "–"
                print(f"| {activity} | {sampling} | {n} | {len(heads)} | {counts[0]:.1f} / {counts[1]:.1f} | "
                      f"{e.mean:.3f} | {shuffled.mean:.3f} | {paired.mean:+.3f} {ci} | {detectable} |", flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
