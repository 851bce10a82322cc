"""Built-in corpus sources: local files and folders, and Hugging Face datasets.

Document ids are stable: an explicit ``id`` field wins, otherwise the id is derived from the
file and the record's position, so the same file always yields the same ids.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from contract import CorpusError, Document, hookimpl

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt", ".parquet")


def _suffix(path: Path) -> str | None:
    return next((s for s in LOCAL_SUFFIXES if path.name.endswith(s)), None)


def _records_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    records = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise CorpusError(f"{path}:{line_number}: not valid JSON ({error.msg})") from error
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise CorpusError(f"{path}:{line_number}: each line needs a string field 'text'")
                records.append(record)
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise CorpusError(f"cannot read corpus file {path}: {error}") from error
    return records


def _records_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several unrelated types for bad files
        raise CorpusError(f"cannot read parquet corpus {path}: {error}") from error
    if "text" not in table.column_names:
        raise CorpusError(f"{path}: parquet corpus needs a 'text' column, has {table.column_names}")
    return table.select([c for c in ("id", "text") if c in table.column_names]).to_pylist()


def documents_from_file(path: Path, id_prefix: str) -> list[Document]:
    suffix = _suffix(path)
    if suffix == ".txt":
        try:
            return [Document(id=id_prefix, text=path.read_text(encoding="utf-8"))]
        except (OSError, UnicodeDecodeError) as error:
            raise CorpusError(f"cannot read corpus file {path}: {error}") from error
    records = _records_parquet(path) if suffix == ".parquet" else _records_jsonl(path)
    return [
        Document(id=str(record["id"]) if record.get("id") is not None else f"{id_prefix}-{i:05d}",
                 text=record["text"])
        for i, record in enumerate(records)
    ]


class LocalFiles:
    """``.jsonl``/``.jsonl.gz`` (``{"id"?, "text"}`` per line), ``.txt`` (one document per
    file), ``.parquet`` (``text`` and optional ``id`` columns), or a folder of them."""

    name = "local"

    def can_load(self, spec: str) -> bool:
        return Path(spec).exists()

    def load(self, spec: str) -> list[Document]:
        root = Path(spec)
        if root.is_file():
            if _suffix(root) is None:
                raise CorpusError(f"{root}: unsupported corpus file; use one of {LOCAL_SUFFIXES}")
            stem = root.name[: -len(_suffix(root))]
            documents = documents_from_file(root, stem)
        else:
            files = sorted(p for p in root.rglob("*") if p.is_file() and _suffix(p))
            if not files:
                raise CorpusError(f"folder {root} holds no {', '.join(LOCAL_SUFFIXES)} files")
            documents = []
            for path in files:
                relative = path.relative_to(root).as_posix()
                documents.extend(documents_from_file(path, relative[: -len(_suffix(path))]))
        return [doc for doc in documents if doc.text.strip()]


class HuggingFaceDataset:
    """``hf:NAME[:SPLIT]`` or a bare ``owner/name``: loaded with ``datasets.load_dataset``.

    NAME may also be a local dataset folder, which is how this is tested offline.
    """

    name = "huggingface"

    def can_load(self, spec: str) -> bool:
        if spec.startswith("hf:"):
            return True
        return "/" in spec and not Path(spec).exists() and _suffix(Path(spec)) is None

    def load(self, spec: str) -> list[Document]:
        import datasets

        name, _, split = spec.removeprefix("hf:").partition(":")
        try:
            dataset = datasets.load_dataset(name, split=split or "train")
        except Exception as error:  # datasets wraps hub, network and format errors alike
            raise CorpusError(
                f"cannot load Hugging Face dataset {name!r} (split {split or 'train'!r}): {error}. "
                "Offline, give a local .jsonl/.txt/.parquet file or folder instead."
            ) from error
        if "text" not in dataset.column_names:
            raise CorpusError(f"dataset {name!r} has no 'text' column ({dataset.column_names})")
        short = name.rstrip("/").rsplit("/", 1)[-1]
        has_ids = "id" in dataset.column_names
        return [
            Document(id=str(row["id"]) if has_ids else f"{short}-{i:06d}", text=row["text"])
            for i, row in enumerate(dataset)
            if row["text"] and row["text"].strip()
        ]


@hookimpl
def register_corpus_sources(register) -> None:
    register(LocalFiles())
    register(HuggingFaceDataset())
