"""Built-in LLM backends. Each is a ``Backend`` subclass registered through ``register_backends``."""

from lookups import Backend

__all__ = ["Backend"]
