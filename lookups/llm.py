"""What crosses between a plugin and the LLM call path: the request a strategy or scorer builds,
the completion a backend returns, and the ledger record of one call."""

import os
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LLMRequest(BaseModel):
    """One prompt to send. ``purpose`` and ``template_version`` only label the ledger entry.
    ``cache_prefix``: how many leading characters of the prompt other requests share (a head's
    explanation before each test prompt); backends with provider prompt caching mark them
    cacheable. Like the labels it shapes no answer, so the response cache ignores it.
    ``choices``: the answer is one of these (a judge's Yes or No); a backend that
    ``constrains_choices`` answers exactly one of them, others answer freely. It shapes the
    answer, so it is part of the cache key (where the backend constrains). ``temperature`` and
    ``sample`` shape it too: k samples of one prompt are k cache entries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    max_tokens: int = Field(gt=0, le=4096)
    logprobs: bool = False
    purpose: str = "other"
    template_version: str | None = None
    cache_prefix: int = Field(default=0, ge=0)
    choices: tuple[str, ...] | None = Field(default=None, min_length=2)
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sample at this temperature "
                                      "instead of the backend's own setting (best of k).")
    sample: int = Field(default=0, ge=0, description="Which of k samples: with a temperature, each "
                        "index is its own LLM cache entry (and, where the backend takes one, seed).")

    @model_validator(mode="after")
    def _prefix_within_prompt(self) -> "LLMRequest":
        if self.cache_prefix > len(self.prompt):
            raise ValueError(f"cache_prefix {self.cache_prefix} is longer than the prompt "
                             f"({len(self.prompt)} characters)")
        return self

    @model_validator(mode="after")
    def _distinct_choices(self) -> "LLMRequest":
        if self.choices is not None and (len(set(self.choices)) < len(self.choices) or not all(self.choices)):
            raise ValueError(f"choices must be distinct non-empty strings, got {list(self.choices)}")
        return self


def share_prefix(requests: list[LLMRequest]) -> list[LLMRequest]:
    """The requests with ``cache_prefix`` set to the prompts' common prefix, cut after its last
    whitespace so no word is split between the cached part and the rest; unchanged when fewer
    than two requests share anything."""
    if len(requests) < 2:
        return requests
    shared = os.path.commonprefix([r.prompt for r in requests])
    cut = max(shared.rfind(" "), shared.rfind("\n")) + 1
    return [r.model_copy(update={"cache_prefix": cut}) for r in requests] if cut else requests


class Completion(BaseModel):
    """What a backend answered. ``top_logprobs``: the first output token's alternatives.
    ``cache_read_tokens`` and ``cache_write_tokens``: the part of ``input_tokens`` the
    provider read from, or wrote to, its prompt cache (priced differently). ``cut``: why the
    backend stopped the text early and dropped its tail (a repeating loop), None if it did not."""

    text: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    top_logprobs: dict[str, float] | None = None
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    cut: str | None = None


class CallRecord(BaseModel):
    """A ledger entry. Tokens and cost are what this call consumed: zero on a cache hit."""

    at: datetime
    backend: str
    model: str
    purpose: str
    template_version: str | None
    cache_key: str
    cache_hit: bool
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    latency_s: float
    cost_usd: float
    attempts: int
    error: str | None = None


class BatchResult(BaseModel):
    """One request's outcome in a provider batch: a completion, or the provider's reason why not."""

    custom_id: str
    completion: Completion | None = None
    error: str | None = None


class BatchPoll(BaseModel):
    """A provider batch as last seen. ``finished``: it will change no more (completed, failed,
    expired or cancelled); ``error``: the provider's reason when the batch as a whole did not
    complete; ``results``: what it answered (possibly some requests only, once finished)."""

    finished: bool
    error: str | None = None
    results: list[BatchResult] = Field(default_factory=list)
