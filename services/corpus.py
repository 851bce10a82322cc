"""Corpora as ordered, id-stable documents with a fingerprint; deterministic train/test splits.

Documents are streamed from their source, never held all at once: a process keeps only a
corpus's ids (its ``CorpusIndex``), which fix the split, and reads texts as it goes (a scan), or
fetches the few documents it needs by id (truncation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lookups import CorpusError, Document, InvalidInputError, get_plugin_manager

SPEC_FORMS = (".jsonl, .jsonl.gz, .txt or .parquet file, a folder of them, or "
              "hf:DATASET[:CONFIG][?split=S&revision=R&text_column=C]")


class CorpusInfo(BaseModel):
    """Provenance of the documents a result was computed on."""

    spec: str
    split: str
    n_documents: int
    fingerprint: str = Field(description="sha256 over the ids and texts, in order.")


def fingerprint(documents: Iterable[Document]) -> str:
    """sha256 over the ids and texts, in order (streamed: the value a list of them gives)."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.id.encode())
        digest.update(b"\0")
        digest.update(doc.text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class Corpus(BaseModel):
    """A whole corpus in memory: for benchmarks and tests on small corpora."""

    spec: str
    documents: list[Document]

    def fingerprint(self, documents: Sequence[Document] | None = None) -> str:
        return fingerprint(self.documents if documents is None else documents)


Split = Literal["train", "test", "all"]


class CorpusSelection(BaseModel):
    """Which documents of a corpus a piece of work reads: the corpus, a deterministic split and
    an optional cap on the number of documents."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    corpus: str = Field(min_length=1, max_length=500, description=f"A {SPEC_FORMS}.")
    split: Split = "train"
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0, description="Last fraction held out as test.")
    test_from_id: str | None = Field(default=None, max_length=500,
                                     description="Documents with id >= this are the test split.")
    max_docs: int | None = Field(default=None, ge=1, le=1_000_000, description="Only the first N of the split.")


def split_positions(
    ids: Sequence[str],
    split: Split | str,  # callers pass user input; anything but a Split is an InvalidInputError
    *,
    test_fraction: float = 0.2,
    test_from_id: str | None = None,
    spec: str = "corpus",
) -> list[int]:
    """Corpus positions of a deterministic split, in corpus order.

    By default the last ``test_fraction`` of the documents (in corpus order) are the test split.
    With ``test_from_id``, documents whose id sorts at or after it are the test split (the shared
    OpenWebText sample uses ``owt-0800``). Either way train and test never share a document.
    """
    if split == "all":
        return list(range(len(ids)))
    if split not in ("train", "test"):
        raise InvalidInputError(f"split {split!r} must be one of 'train', 'test', 'all'")
    if test_from_id is not None:
        is_test = [doc_id >= test_from_id for doc_id in ids]
    else:
        if not 0.0 < test_fraction < 1.0:
            raise InvalidInputError(f"test_fraction {test_fraction} must be between 0 and 1")
        n_train = round(len(ids) * (1.0 - test_fraction))
        is_test = [i >= n_train for i in range(len(ids))]
    chosen = [i for i, test in enumerate(is_test) if test == (split == "test")]
    if not chosen:
        raise CorpusError(f"the {split} split of corpus {spec!r} is empty")
    return chosen


def split_documents(
    corpus: Corpus, split: Split | str, *, test_fraction: float = 0.2, test_from_id: str | None = None,
) -> list[Document]:
    """``split_positions`` of an in-memory corpus."""
    positions = split_positions([d.id for d in corpus.documents], split, test_fraction=test_fraction,
                                test_from_id=test_from_id, spec=corpus.spec)
    return [corpus.documents[i] for i in positions]


def stream_corpus(spec: str) -> Iterator[Document]:
    """The corpus's documents in order, streamed by the first registered source that accepts
    ``spec``."""
    sources: list = []
    get_plugin_manager().hook.register_corpus_sources(register=sources.append)
    for source in sources:
        if source.can_load(spec):
            return iter(source.load(spec))
    names = ", ".join(source.name for source in sources)
    raise CorpusError(f"no corpus source accepts {spec!r} (sources: {names}); give an existing {SPEC_FORMS}")


@cache
def packaged_builders() -> frozenset[str]:
    """The builders ``datasets`` ships (``text``, ``json``, ``csv``, ``parquet``, ``imagefolder``,
    ``sql``, ...): as an ``hf:`` name they read local files, with no data files given those of
    the working directory, so the API refuses them. Read from the installed ``datasets``, so a
    new builder is refused too."""
    import pkgutil

    import datasets.packaged_modules

    return frozenset(module.name for module in pkgutil.iter_modules(datasets.packaged_modules.__path__))


@dataclass(frozen=True)
class CorpusIndex:
    """A corpus's document ids in order: all a process keeps of it."""

    spec: str
    ids: tuple[str, ...]


@cache
def index_corpus(spec: str) -> CorpusIndex:
    """One streamed pass over the corpus: its ids, checked non-empty and unique."""
    ids = tuple(doc.id for doc in stream_corpus(spec))
    if not ids:
        raise CorpusError(f"corpus {spec!r} has no documents with text")
    if len(set(ids)) != len(ids):
        raise CorpusError(f"corpus {spec!r} has duplicate document ids")
    return CorpusIndex(spec=spec, ids=ids)


def load_corpus(spec: str) -> Corpus:
    """A whole corpus in memory (benchmarks, tests); campaigns stream instead."""
    index_corpus(spec)  # the same checks
    return Corpus(spec=spec, documents=list(stream_corpus(spec)))


@cache
def selected_positions(selection: CorpusSelection) -> tuple[int, ...]:
    """Corpus positions of the selected documents, in corpus order."""
    index = index_corpus(selection.corpus)
    positions = split_positions(index.ids, selection.split, test_fraction=selection.test_fraction,
                                test_from_id=selection.test_from_id, spec=selection.corpus)
    return tuple(positions[: selection.max_docs] if selection.max_docs else positions)


def stream_selection(selection: CorpusSelection, start: int = 0, stop: int | None = None) -> Iterator[Document]:
    """The selected documents ``start:stop`` (indices within the selection), streamed; reading
    stops after the last one."""
    positions = selected_positions(selection)[start:stop]
    if not positions:
        return
    wanted = iter(positions)
    following = next(wanted)
    for position, doc in enumerate(stream_corpus(selection.corpus)):
        if position == following:
            yield doc
            following = next(wanted, -1)
            if following < 0:
                return


def fetch_documents(selection: CorpusSelection, ids: Collection[str]) -> list[Document]:
    """The selected documents with these ids, in corpus order: one streamed pass that stops when
    it has them all. An id outside the selection is an InvalidInputError."""
    index = index_corpus(selection.corpus)
    wanted = set(ids)
    missing = wanted - {index.ids[p] for p in selected_positions(selection)}
    if missing:
        raise InvalidInputError(f"documents not in the {selection.split} split of corpus "
                                f"{selection.corpus!r}: {sorted(missing)[:5]}")
    found: list[Document] = []
    for doc in stream_corpus(selection.corpus):
        if doc.id in wanted:
            found.append(doc)
            if len(found) == len(wanted):
                break
    return found


@cache
def corpus_info(selection: CorpusSelection) -> CorpusInfo:
    """Provenance of the selected documents (spec, split, count, fingerprint), one streamed pass."""
    return CorpusInfo(spec=selection.corpus, split=selection.split,
                      n_documents=len(selected_positions(selection)),
                      fingerprint=fingerprint(stream_selection(selection)))
