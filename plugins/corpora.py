"""Built-in corpus sources: local files and folders, and Hugging Face datasets, both streamed.

Document ids are stable: an explicit ``id`` field wins, otherwise the id is derived from the
file and the record's position, so the same file always yields the same ids.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from lookups import CorpusError, Document, hookimpl

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt", ".parquet")
HUB_OPTIONS = ("split", "revision", "text_column")
# Before CONFIG, the part after the name was the split: such specs still read that split.
LEGACY_SPLIT = re.compile(r"(train|test|validation)(\[[^\]]*\])?")


def _suffix(path: Path) -> str | None:
    return next((s for s in LOCAL_SUFFIXES if path.name.endswith(s)), None)


def _records_jsonl(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
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
                yield record
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise CorpusError(f"cannot read corpus file {path}: {error}") from error


def _records_parquet(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several unrelated types for bad files
        raise CorpusError(f"cannot read parquet corpus {path}: {error}") from error
    names = table.schema_arrow.names
    if "text" not in names:
        raise CorpusError(f"{path}: parquet corpus needs a 'text' column, has {names}")
    for batch in table.iter_batches(columns=[c for c in ("id", "text") if c in names]):
        yield from batch.to_pylist()


def check_no_links_out(folder: Path, spec: str) -> None:
    """Every entry of ``folder``, symlinks followed, stays inside it: a link to a file or folder
    elsewhere (``/etc/passwd``, another user's data) is refused, not skipped, so a corpus never
    silently differs from what its folder shows. The error names the entry, not its target."""
    base = folder.resolve()
    for entry in folder.rglob("*"):
        try:
            inside = entry.resolve().is_relative_to(base)
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        if not inside:
            raise CorpusError(f"corpus {spec!r}: {entry.relative_to(folder).as_posix()!r} is a link out of the "
                              "corpus folder; a folder corpus reads only files inside it")


def documents_from_file(path: Path, id_prefix: str) -> Iterator[Document]:
    suffix = _suffix(path)
    if suffix == ".txt":
        try:
            yield Document(id=id_prefix, text=path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise CorpusError(f"cannot read corpus file {path}: {error}") from error
        return
    records = _records_parquet(path) if suffix == ".parquet" else _records_jsonl(path)
    for i, record in enumerate(records):
        yield Document(id=str(record["id"]) if record.get("id") is not None else f"{id_prefix}-{i:05d}",
                       text=record["text"])


class LocalFiles:
    """``.jsonl``/``.jsonl.gz`` (``{"id"?, "text"}`` per line), ``.txt`` (one document per
    file), ``.parquet`` (``text`` and optional ``id`` columns), or a folder of them (whose
    entries must not link out of it)."""

    name = "local"

    def can_load(self, spec: str) -> bool:
        return Path(spec).exists()

    def load(self, spec: str) -> Iterator[Document]:
        root = Path(spec)
        if root.is_file():
            suffix = _suffix(root)
            if suffix is None:
                raise CorpusError(f"{root}: unsupported corpus file; use one of {LOCAL_SUFFIXES}")
            files = [(root, root.name[: -len(suffix)])]
        else:
            check_no_links_out(root, spec)
            paths = sorted(p for p in root.rglob("*") if p.is_file() and _suffix(p))
            if not paths:
                raise CorpusError(f"folder {root} holds no {', '.join(LOCAL_SUFFIXES)} files")
            files = [(p, p.relative_to(root).as_posix()[: -len(_suffix(p) or "")]) for p in paths]
        for path, prefix in files:
            yield from (doc for doc in documents_from_file(path, prefix) if doc.text.strip())


@dataclass(frozen=True)
class HubSpec:
    """``hf:NAME[:CONFIG][?split=S&revision=R&text_column=C]``, parsed."""

    name: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    text_column: str = "text"


def parse_hub_spec(spec: str) -> HubSpec:
    body, _, query = spec.removeprefix("hf:").partition("?")
    name, _, config = body.partition(":")
    if not name:
        raise CorpusError(f"{spec!r}: give a dataset name, hf:NAME[:CONFIG][?split=...]")
    try:
        given = parse_qs(query, keep_blank_values=True, strict_parsing=True) if query else {}
    except ValueError as error:
        raise CorpusError(f"{spec!r}: options must be KEY=VALUE joined by '&' ({error})") from error
    for key, values in given.items():
        if key not in HUB_OPTIONS:
            raise CorpusError(f"{spec!r}: unknown option {key!r}; the options are {', '.join(HUB_OPTIONS)}")
        if len(values) > 1 or not values[0]:
            raise CorpusError(f"{spec!r}: option {key!r} needs exactly one non-empty value")
    options = {key: values[0] for key, values in given.items()}
    if config and "split" not in options and LEGACY_SPLIT.fullmatch(config):
        options["split"], config = config, ""
    return HubSpec(name=name, config=config or None, **options)


class HuggingFaceDataset:
    """``hf:NAME[:CONFIG][?split=S&revision=R&text_column=C]`` or a bare ``owner/name``, streamed
    with ``datasets.load_dataset(..., streaming=True)`` (split ``train``, column ``text`` unless
    given). NAME may also be an absolute local dataset folder (whose entries must not link out of
    it), which is how this is tested offline; never a path relative to the working directory.
    """

    name = "huggingface"

    def can_load(self, spec: str) -> bool:
        if spec.startswith("hf:"):
            return True
        return "/" in spec and not Path(spec).exists() and _suffix(Path(spec)) is None

    def load(self, spec: str) -> Iterator[Document]:
        import datasets

        hub = parse_hub_spec(spec)
        local = Path(hub.name)
        if local.is_absolute() and local.is_dir():
            check_no_links_out(local, spec)
        elif not local.is_absolute() and local.exists():  # datasets would read it, wherever the process runs
            raise CorpusError(f"{spec!r}: {hub.name!r} is a path relative to the working directory; give a "
                              "local dataset folder by its absolute path")
        try:
            rows = datasets.load_dataset(hub.name, hub.config, split=hub.split, revision=hub.revision,
                                         streaming=True)
        except Exception as error:  # datasets wraps hub, network and format errors alike
            raise CorpusError(
                f"cannot load Hugging Face dataset {hub.name!r} (config {hub.config!r}, split {hub.split!r}, "
                f"revision {hub.revision or 'latest'!r}): {error}. "
                "Offline, give a local .jsonl/.txt/.parquet file or folder instead."
            ) from error
        short = hub.name.rstrip("/").rsplit("/", 1)[-1]
        for i, row in enumerate(rows):
            if hub.text_column not in row:
                raise CorpusError(f"dataset {hub.name!r} has no {hub.text_column!r} column ({sorted(row)}); "
                                  "name its text column with ?text_column=")
            text = row[hub.text_column]
            if isinstance(text, str) and text.strip():
                yield Document(id=str(row["id"]) if row.get("id") is not None else f"{short}-{i:06d}", text=text)


@hookimpl
def register_corpus_sources(register) -> None:
    register(LocalFiles())
    register(HuggingFaceDataset())
