"""Built-in LLM backends. Each is a ``Backend`` subclass registered through ``register_backends``."""

from plugins.backends.base import Backend

__all__ = ["Backend"]
