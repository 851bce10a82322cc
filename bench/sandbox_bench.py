"""How long one program takes on 1,000 prompts in the sandbox, the process's start included
(issue 26's target: under 2 s). Prompts are the shared OpenWebText sample's documents cut to
their first 60 words, tokens split on spaces; the program is a typical explainer program (a
regex near the end, a token check). Prints each run and the median.

    .venv/bin/python bench/sandbox_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

from lookups import run_program

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "openwebtext-1k.jsonl.gz"
PROGRAM = '''
import re

def active(text: str, tokens: list[str]) -> bool:
    tail = text[-200:]
    if re.search(r"\\b(the|a|an)\\s+\\w+$", tail, re.IGNORECASE):
        return True
    return len(tokens) > 5 and tokens[-1].strip().isdigit()
'''


def prompts(n: int) -> list[tuple[str, list[str]]]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as handle:
        texts = [" ".join(json.loads(line)["text"].split()[:60]) for line in handle]
    found = []
    while len(found) < n:
        for text in texts[: n - len(found)]:
            words = text.split(" ")
            found.append((text, [words[0], *(" " + w for w in words[1:])]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=1000)
    args = parser.parse_args()
    given = prompts(args.prompts)
    times = []
    for run in range(args.runs):
        started = time.perf_counter()
        answers = run_program(PROGRAM, given)
        times.append(time.perf_counter() - started)
        assert all(a.value is not None for a in answers), [a.error for a in answers if a.error][:3]
        print(f"run {run}: {len(answers)} prompts in {times[-1]:.3f} s "
              f"({sum(a.value is True for a in answers)} active)")
    print(f"median {statistics.median(times):.3f} s, max {max(times):.3f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
