"""Errors a user can act on. Each message names the offending input and what is allowed."""


class LookupsError(Exception):
    """Base class: the CLI and API turn these into clear messages, never tracebacks."""


class ModelLoadError(LookupsError):
    """A subject model could not be found, reached or supported."""


class CorpusError(LookupsError):
    """A corpus is empty, unreadable or unknown."""


class InvalidInputError(LookupsError, ValueError):
    """A request names something out of range (layer, neuron, head, split...)."""
