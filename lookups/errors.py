"""Errors a user can act on, for plugins and services alike. Each message names the offending
input and what is allowed; messages never carry an API key (see ``redact``)."""

import re

# Key-looking strings (OpenAI ``sk-...``, Anthropic ``sk-ant-...``) that an SDK might echo back.
_KEY_PATTERN = re.compile(r"\b(sk|key|api)[-_][A-Za-z0-9_\-]{6,}")


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Remove known secrets and anything shaped like a key from a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class LookupsError(Exception):
    """Base class: the CLI and API turn these into clear messages, never tracebacks."""


class ModelLoadError(LookupsError):
    """A subject model could not be found, reached or supported."""


class CorpusError(LookupsError):
    """A corpus is empty, unreadable or unknown."""


class InvalidInputError(LookupsError, ValueError):
    """A request names something out of range (layer, neuron, head, split...)."""


class BackendError(LookupsError):
    """A backend refused or failed a request in a way retrying will not fix."""


class UnknownBackendError(BackendError):
    """A backend spec names no registered backend or is malformed."""


class MissingApiKeyError(BackendError):
    """The backend needs a key and its environment variable is unset."""


class BackendUnavailableError(BackendError):
    """The backend stayed unreachable, rate-limited or failing after every retry."""


class BudgetExceededError(LookupsError):
    """The next call could push spending over the budget cap; nothing over it was spent."""


class TemplateError(LookupsError):
    """A prompt template is unknown, unreadable or has wrong placeholders."""


class UnknownPluginError(LookupsError, ValueError):
    """An explainer strategy or scorer name that no installed plugin registers."""
