"""What a corpus source plugin yields: documents with stable ids, in a stable order."""

from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel


class Document(BaseModel):
    id: str
    text: str


class CorpusSource(Protocol):
    """Loads the corpora whose spec it recognises (a file suffix, an ``hf:`` prefix...).

    ``load`` should yield documents lazily (a generator), so that a scan streams the corpus
    instead of holding it; documents without text are left out.
    """

    name: str

    def can_load(self, spec: str) -> bool: ...

    def load(self, spec: str) -> Iterable[Document]: ...
