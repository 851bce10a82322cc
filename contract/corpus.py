"""What a corpus source plugin yields: documents with stable ids, in a stable order."""

from typing import Protocol

from pydantic import BaseModel


class Document(BaseModel):
    id: str
    text: str


class CorpusSource(Protocol):
    """Loads the corpora whose spec it recognises (a file suffix, an ``hf:`` prefix...)."""

    name: str

    def can_load(self, spec: str) -> bool: ...

    def load(self, spec: str) -> list[Document]: ...
