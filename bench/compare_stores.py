"""Compare two results stores table by table, for a refactor that must not change behaviour.

Run the same campaign on the code before and after, each into its own SQLite results store and
LLM store (``LOOKUPS_RESULTS_URL``, ``LOOKUPS_LLM_DB_URL``, so no answer comes from a cache), then:

    python bench/compare_stores.py before.sqlite after.sqlite
    python bench/compare_stores.py llm-before.sqlite llm-after.sqlite

Rows are compared as content, not identity: surrogate ids and campaign ids are dropped, a row's
head is named by its key (``27:1263/20.3``) instead of its id, and what differs from run to run
by nature (timestamps, durations, rates) is left out, inside JSON payloads too. Everything else
(configs, payloads, scores, costs, errors) must be equal. Exit status 1 when a table differs.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

IDENTITY = {"id", "campaign_id", "head_id"}
# Keys whose values are wall-clock times or rates: they differ between two runs of the same work.
VOLATILE = {"at", "created_at", "updated_at", "enqueued_at", "started_at", "finished_at", "elapsed_s", "latency_s",
            "tokens_per_s", "seconds", "duration_s", "wall_s"}
SKIPPED_TABLES = {"alembic_version", "llm_alembic_version"}


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_volatile(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_without_volatile(item) for item in value]
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return _without_volatile(json.loads(value))
        except json.JSONDecodeError:
            return value
    return value


def table_rows(connection: sqlite3.Connection, table: str, heads: dict[int, str]) -> Counter[str]:
    """A table's rows as a multiset of canonical JSON strings."""
    cursor = connection.execute(f'SELECT * FROM "{table}"')  # noqa: S608 (names from sqlite_master)
    columns = [description[0] for description in cursor.description]
    rows: Counter[str] = Counter()
    for values in cursor:
        row = {column: _cell(value) for column, value in zip(columns, values, strict=True)
               if column not in IDENTITY | VOLATILE}
        if "head_id" in columns:
            row["head"] = heads.get(values[columns.index("head_id")])
        rows[json.dumps(row, sort_keys=True, default=str)] += 1
    return rows


def read_store(path: Path) -> dict[str, Counter[str]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
              if name not in SKIPPED_TABLES]
    heads = {row[0]: f"{row[1]}:{row[2]}/{row[3]}.{row[4]}"
             for row in connection.execute("SELECT id, layer, neuron, head_layer, head FROM heads")} \
        if "heads" in tables else {}
    return {table: table_rows(connection, table, heads) for table in sorted(tables)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = read_store(args.before), read_store(args.after)
    differing = 0
    for table in sorted(before.keys() | after.keys()):
        old, new = before.get(table, Counter()), after.get(table, Counter())
        if old == new:
            print(f"{table:20s} equal ({sum(old.values())} rows)")
            continue
        differing += 1
        print(f"{table:20s} DIFFERS: {sum(old.values())} rows before, {sum(new.values())} after")
        for label, extra in (("only before", old - new), ("only after", new - old)):
            for row in list(extra)[:2]:
                print(f"    {label}: {row[:400]}")
    print(f"{len(before.keys() | after.keys()) - differing} tables equal, {differing} differ")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
