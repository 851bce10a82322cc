"""Classification throughput of the local backend for one head's 10 test prompts.

Explanation-first prompts let llama.cpp keep the KV cache of the shared prefix (chat header +
explanation + question), so each later prompt only evaluates its own example. Compared with
rebuilding every prompt from scratch (KV cache dropped before each call). Bypasses the response
cache on purpose: it measures the backend, not the cache.

    .venv/bin/python bench/llm_bench.py [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "openwebtext-1k.jsonl.gz"
EXPLANATION = ("The attention head is active when the document gives spatial directions or describes "
               "turning, such as 'turn left' or 'on your', and when a speaker agrees with or confirms "
               "what someone else said, as in 'you are absolutely' or 'that is exactly'. It is inactive "
               "in narrative or factual text about places, prices and dates.")


def test_prompts(n: int = 10) -> list[str]:
    """Ten real corpus snippets (test split ids), 30-60 words, cut before a word."""
    snippets = []
    with gzip.open(CORPUS, "rt") as handle:
        for line in handle:
            doc = json.loads(line)
            if not doc.get("id", "").startswith("owt-08"):
                continue
            words = re.sub(r"\s+", " ", doc["text"]).split(" ")
            if len(words) > 80:
                snippets.append(" ".join(words[10: 10 + 30 + len(snippets) * 3]))
            if len(snippets) == n:
                return snippets
    raise SystemExit(f"not enough test documents in {CORPUS}")


def run(chat, prompts: list[str]) -> dict:
    from langchain_core.messages import HumanMessage

    started = time.perf_counter()
    messages = [chat.invoke([HumanMessage(content=p)]) for p in prompts]
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "calls_per_s": len(prompts) / seconds,
        "prompt_tokens": sum(m.usage_metadata["input_tokens"] for m in messages),
        "tokens_evaluated": sum(m.response_metadata["prompt_tokens_evaluated"] for m in messages),
        "answers": [m.content for m in messages],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from plugins.backends.llama_chat import LlamaCppChat, load_engine
    from services.llm.registry import create_backend, get_template

    backend = create_backend("local", {"n_ctx": 2048, "n_threads": args.threads})
    template = get_template("neo2024")
    prompts = [template.render_classifier(EXPLANATION, p + " right") for p in test_prompts()]
    common = dict(model_path=backend.model, n_ctx=2048, n_threads=args.threads, max_tokens=1, logprobs=True)
    modes = {"explanation-first, prefix reused": LlamaCppChat(reuse_prefix=True, **common),
             "rebuilt from scratch": LlamaCppChat(reuse_prefix=False, **common)}
    load_engine(backend.model, 2048, args.threads)
    results = {}
    for name, chat in modes.items():
        run(chat, prompts[:2])  # warm-up
        rounds = []
        for _ in range(args.rounds):
            load_engine(backend.model, 2048, args.threads).llm.reset()  # each round starts cold
            rounds.append(run(chat, prompts))
        best = min(rounds, key=lambda r: r["seconds"])
        results[name] = best
    answers = {name: r.pop("answers") for name, r in results.items()}
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                   f"{args.threads} threads",
        "model": Path(backend.model).name, "prompts": len(prompts), "rounds": args.rounds,
        "results": results, "same_answers": len(set(map(tuple, answers.values()))) == 1,
    }, indent=2))


if __name__ == "__main__":
    main()
