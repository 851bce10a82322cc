"""A second corpus domain built from a package on every machine: the Python language reference
that CPython ships as ``pydoc_data.topics`` (about 465 000 characters of technical English).

Each topic is cut at paragraph boundaries into documents of about ``size`` characters, and the
documents are put in a seeded order so the default test split (the last 20 %) mixes topics.

    .venv/bin/python bench/pydoc_corpus.py OUT.jsonl.gz
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path


def documents(size: int = 1500, seed: int = 0) -> list[str]:
    from pydoc_data.topics import topics

    found = []
    for name in sorted(topics):
        current = ""
        for paragraph in topics[name].split("\n\n"):
            if current and len(current) + len(paragraph) > size:
                found.append(current.strip())
                current = ""
            current += paragraph + "\n\n"
        if current.strip():
            found.append(current.strip())
    random.Random(seed).shuffle(found)
    return found


def write(path: Path) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for index, text in enumerate(documents()):
            handle.write(json.dumps({"id": f"pydoc-{index:04d}", "text": text}) + "\n")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1])))
