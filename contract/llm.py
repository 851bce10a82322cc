"""What crosses between a plugin and the LLM call path: the request a strategy or scorer builds,
the completion a backend returns, and the ledger record of one call."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class LLMRequest(BaseModel):
    """One prompt to send. ``purpose`` and ``template_version`` only label the ledger entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    max_tokens: int = Field(gt=0, le=4096)
    logprobs: bool = False
    purpose: str = "other"
    template_version: str | None = None


class Completion(BaseModel):
    """What a backend answered. ``top_logprobs``: the first output token's alternatives."""

    text: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    top_logprobs: dict[str, float] | None = None


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
