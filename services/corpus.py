"""Corpora as ordered, id-stable documents with a fingerprint; deterministic train/test splits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract import CorpusError, Document, InvalidInputError, get_plugin_manager


class CorpusInfo(BaseModel):
    """Provenance of the documents a result was computed on."""

    spec: str
    split: str
    n_documents: int
    fingerprint: str = Field(description="sha256 over the ids and texts, in order.")


class Corpus(BaseModel):
    spec: str
    documents: list[Document]

    def fingerprint(self, documents: Sequence[Document] | None = None) -> str:
        digest = hashlib.sha256()
        for doc in self.documents if documents is None else documents:
            digest.update(doc.id.encode())
            digest.update(b"\0")
            digest.update(doc.text.encode())
            digest.update(b"\0")
        return digest.hexdigest()


Split = Literal["train", "test", "all"]


class CorpusSelection(BaseModel):
    """Which documents of a corpus a piece of work reads: the corpus, a deterministic split and
    an optional cap on the number of documents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: str = Field(min_length=1, max_length=500, description="File, folder or hf:NAME[:SPLIT].")
    split: Split = "train"
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0, description="Last fraction held out as test.")
    test_from_id: str | None = Field(default=None, max_length=500,
                                     description="Documents with id >= this are the test split.")
    max_docs: int | None = Field(default=None, ge=1, le=1_000_000, description="Only the first N of the split.")


def split_documents(
    corpus: Corpus,
    split: Split | str,  # callers pass user input; anything but a Split is an InvalidInputError
    *,
    test_fraction: float = 0.2,
    test_from_id: str | None = None,
) -> list[Document]:
    """Deterministic split of a corpus.

    By default the last ``test_fraction`` of the documents (in corpus order) are the test split.
    With ``test_from_id``, documents whose id sorts at or after it are the test split (the shared
    OpenWebText sample uses ``owt-0800``). Either way train and test never share a document.
    """
    if split == "all":
        return list(corpus.documents)
    if split not in ("train", "test"):
        raise InvalidInputError(f"split {split!r} must be one of 'train', 'test', 'all'")
    if test_from_id is not None:
        is_test = [doc.id >= test_from_id for doc in corpus.documents]
    else:
        if not 0.0 < test_fraction < 1.0:
            raise InvalidInputError(f"test_fraction {test_fraction} must be between 0 and 1")
        n_train = round(len(corpus.documents) * (1.0 - test_fraction))
        is_test = [i >= n_train for i in range(len(corpus.documents))]
    chosen = [doc for doc, test in zip(corpus.documents, is_test) if test == (split == "test")]
    if not chosen:
        raise CorpusError(f"the {split} split of corpus {corpus.spec!r} is empty")
    return chosen


def load_corpus(spec: str) -> Corpus:
    """Load a corpus through the first registered source that accepts ``spec``."""

    sources: list = []
    get_plugin_manager().hook.register_corpus_sources(register=sources.append)
    for source in sources:
        if source.can_load(spec):
            documents = source.load(spec)
            if not documents:
                raise CorpusError(f"corpus {spec!r} has no documents with text")
            ids = [doc.id for doc in documents]
            if len(set(ids)) != len(ids):
                raise CorpusError(f"corpus {spec!r} has duplicate document ids")
            return Corpus(spec=spec, documents=documents)
    names = ", ".join(source.name for source in sources)
    raise CorpusError(
        f"no corpus source accepts {spec!r} (sources: {names}); give an existing .jsonl, "
        ".jsonl.gz, .txt or .parquet file, a folder of them, or hf:DATASET[:SPLIT]"
    )
