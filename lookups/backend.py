"""What every LLM backend is: class attributes describing it, pydantic options, one ``complete``,
and, for providers with a batch API (``supports_batch``), ``submit_batch`` and ``poll_batch``.

Backends build a langchain chat model; ``complete`` reads text, token usage and first-token
logprobs from the ``AIMessage`` in OpenAI's format, which the local backend also emits.
"""

from __future__ import annotations

import math
import os
import threading
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lookups.errors import MissingApiKeyError, UnknownBackendError
from lookups.llm import BatchPoll, Completion, LLMRequest

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage


class BackendDefaults(BaseModel):
    """What the deployment decides for every backend (from its settings), unless a backend's
    own options say otherwise."""

    model_config = ConfigDict(frozen=True)

    timeout_s: float = Field(gt=0, description="Per-request timeout.")
    max_concurrency: int = Field(ge=1, description="Parallel calls per remote backend.")
    cache_dir: Path = Field(description="Where derived files (a joined GGUF model) are kept.")


class Backend:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    supports_logprobs: ClassVar[bool] = False
    json_mode: ClassVar[bool] = False
    max_context: ClassVar[int | None] = None  # None: depends on the model
    default_model: ClassVar[str] = ""
    # Runs on this machine: no per-token price, so a budget has nothing to cap and needs none.
    local: ClassVar[bool] = False
    # A backend whose target may be a file path: the targets it knows by name instead (packaged
    # models). The API lets a request name these, and paths only under LOOKUPS_MODEL_ROOTS.
    named_targets: ClassVar[tuple[str, ...]] = ()
    # Takes a list of requests as one provider batch job (cheaper, answered within hours):
    # implements ``submit_batch`` and ``poll_batch``.
    supports_batch: ClassVar[bool] = False
    # What reading and writing the provider's prompt cache costs, as factors of the input price
    # (Anthropic: reads 0.1, writes 1.25; OpenAI: reads 0.5, caching automatic and free).
    cache_read_price: ClassVar[float] = 1.0
    cache_write_price: ClassVar[float] = 1.0
    # Answers a request's ``choices`` with exactly one of them (a judge's Yes or No), by
    # ``choice_arguments``; a backend that cannot keeps answering freely, and the text is parsed.
    # Read per backend object: an OpenAI-compatible server's ability is an option.
    constrains_choices: bool = False
    # Options that change how a request travels, never what it answers: left out of
    # ``answer_options`` and so of the LLM cache key. A backend with other such options extends it.
    transport_options: ClassVar[frozenset[str]] = frozenset(
        {"base_url", "timeout", "max_concurrency", "n_threads", "reuse_prefix", "n_ctx"})

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, target: str, options: dict[str, Any] | None, defaults: BackendDefaults):
        """``target`` is what follows ``name:`` in the spec (a model name for most backends)."""
        self.defaults = defaults
        self.model = target or self.default_model
        if not self.model:
            raise UnknownBackendError(f"backend {self.name!r} needs a model: '{self.name}:MODEL'")
        try:
            self.options = self.Options(**(options or {}))
        except ValidationError as error:
            raise UnknownBackendError(f"backend {self.name!r} options: {error}") from None
        self.max_concurrency = getattr(self.options, "max_concurrency", None) or 1
        self._chat_models: dict[tuple[int, bool], BaseChatModel] = {}
        self._chat_models_lock = threading.Lock()

    @property
    def endpoint(self) -> str | None:
        """Where requests go, when it matters for caching (same model on two servers)."""
        return None

    def answer_options(self) -> dict[str, Any]:
        """The options that shape an answer (temperature, a seed, ...), as JSON-able values: part
        of the LLM cache key, so answers sampled one way are never served for a request made
        another way. Default: every validated option except ``transport_options``."""
        return {name: value for name, value in self.options.model_dump(mode="json").items()
                if name not in self.transport_options}

    def api_key(self) -> str | None:
        if not self.needs_key:
            return None
        key = os.environ.get(self.key_env_var or "")
        if not key:
            raise MissingApiKeyError(
                f"backend {self.name!r} needs an API key: set the environment variable {self.key_env_var}"
            )
        return key

    @classmethod
    def preload(cls) -> None:
        """Import what ``chat_model`` needs. A process's first call otherwise waits for it,
        seconds for some client libraries; ``lookups run`` and the llm worker call this in the
        background while other work goes on. Default: nothing to import."""

    def chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        raise NotImplementedError

    def is_transient(self, error: BaseException) -> bool:
        """Rate limits, 5xx, timeouts and connection failures: worth retrying."""
        return False

    def retry_after(self, error: BaseException) -> float | None:
        """Seconds the server asked us to wait, if it said: ``retry-after-ms`` (milliseconds, as
        OpenAI sends it), else ``Retry-After`` in seconds or as an HTTP date. A date in the past
        or a negative value is 0; an unreadable value is as if not sent."""
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None) if response is not None else None
        return retry_after_seconds(headers) if headers is not None else None

    def complete(self, request: LLMRequest) -> Completion:
        constrain = self.choice_arguments(request.choices) if request.choices and self.constrains_choices else {}
        message = self._chat_model(request.max_tokens, request.logprobs and self.supports_logprobs).invoke(
            self.messages(request), **constrain, **self.sampling(request))
        return completion_from_message(message)

    def choice_arguments(self, choices: tuple[str, ...]) -> dict[str, Any]:
        """Keyword arguments of the chat model's ``invoke`` that restrict its answer to one of
        ``choices``; only called where ``constrains_choices``."""
        raise NotImplementedError(f"backend {self.name!r} cannot constrain its answer")

    def sampling(self, request: LLMRequest) -> dict[str, Any]:
        """Keyword arguments of the chat model's call for a request that asks for its own
        temperature (best of k); none otherwise. A backend whose provider takes a seed adds
        ``request.sample`` as one."""
        return {} if request.temperature is None else {"temperature": request.temperature}

    def messages(self, request: LLMRequest) -> list[BaseMessage]:
        """The chat messages of a request: its prompt as one user message. A backend whose
        provider caches marked prompt prefixes marks ``request.cache_prefix`` here."""
        from langchain_core.messages import HumanMessage

        return [HumanMessage(content=request.prompt)]

    def _chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        """``chat_model``, built once per (max_tokens, logprobs) and shared by every call and
        thread (langchain chat models are): building one, with its SDK client, takes milliseconds."""
        key = (max_tokens, logprobs)
        with self._chat_models_lock:
            if key not in self._chat_models:
                self._chat_models[key] = self.chat_model(max_tokens, logprobs)
            return self._chat_models[key]

    def submit_batch(self, requests: list[tuple[str, LLMRequest]]) -> str:
        """Send (custom id, request) pairs as one provider batch; return the provider's batch id.
        Custom ids are at most 64 characters of ``[A-Za-z0-9_-]``."""
        raise NotImplementedError(f"backend {self.name!r} has no batch mode")

    def poll_batch(self, batch_id: str) -> BatchPoll:
        """The batch's state now and, once it finished, its results by custom id."""
        raise NotImplementedError(f"backend {self.name!r} has no batch mode")


def retry_after_seconds(headers: Any, now: datetime | None = None) -> float | None:
    """The wait asked for by HTTP response headers (case-insensitive: ``httpx.Headers`` or a
    plain mapping); see ``Backend.retry_after``."""
    milliseconds = _seconds(_header(headers, "retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = _header(headers, "retry-after")
    seconds = _seconds(value)
    if seconds is not None or value is None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None and hasattr(headers, "items"):  # a plain dict: match names case-insensitively
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return None if value is None else str(value).strip()


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None


def completion_from_message(message: AIMessage) -> Completion:
    usage: dict[str, Any] = dict(message.usage_metadata or {})
    text = message.content if isinstance(message.content, str) else "".join(
        part.get("text", "") if isinstance(part, dict) else str(part) for part in message.content
    )
    details = usage.get("input_token_details") or {}
    return Completion(
        text=text,
        input_tokens=usage.get("input_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
        top_logprobs=first_token_logprobs(message.response_metadata.get("logprobs")),
        cache_read_tokens=details.get("cache_read") or 0,
        cache_write_tokens=details.get("cache_creation") or 0,
        cut=message.response_metadata.get("cut"),
    )


def first_token_logprobs(logprobs: dict | None) -> dict[str, float] | None:
    """OpenAI-format ``{"content": [{"top_logprobs": [{"token", "logprob"}]}]}`` → token → logprob."""
    content = (logprobs or {}).get("content") or []
    if not content:
        return None
    top: dict[str, float] = {}
    for item in content[0].get("top_logprobs") or []:
        token, logprob = item.get("token"), item.get("logprob")
        if isinstance(token, str) and isinstance(logprob, int | float) and math.isfinite(logprob):
            # Two spellings of one token (rare) keep the likelier one.
            top[token] = max(logprob, top.get(token, -math.inf))
    return top or None
