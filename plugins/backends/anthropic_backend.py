"""Anthropic chat models via ``ChatAnthropic``. No logprobs: P(Yes) stays empty. Batch mode
goes through the ``anthropic`` SDK's Message Batches (create, retrieve, results).

Prompt caching: a request's shared prefix (``LLMRequest.cache_prefix``: a head's explanation
before each test prompt) goes as its own text block with ``cache_control``, so later requests
with that prefix read it from Anthropic's cache at a tenth of the input price (writing it costs
1.25×). Anthropic caches only prefixes of 1024 tokens or more (2048 on Haiku models); a shorter
one is sent marked and simply not cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from lookups import Backend, BackendDefaults, BatchPoll, BatchResult, Completion, LLMRequest, hookimpl

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage


class AnthropicBackend(Backend):
    name = "anthropic"
    description = "Anthropic chat models (langchain-anthropic), e.g. anthropic:claude-sonnet-4-5"
    needs_key = True
    key_env_var = "ANTHROPIC_API_KEY"
    supports_logprobs = False
    json_mode = False
    max_context = 200_000
    default_model = "claude-sonnet-4-5"
    supports_batch = True
    cache_read_price = 0.1
    cache_write_price = 1.25
    # No logit bias and no logprobs; its structured outputs (a JSON schema, some models only)
    # would change the answer to JSON. A judge's answers stay free and are parsed.
    constrains_choices = False

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        base_url: str | None = None
        timeout: float | None = Field(default=None, gt=0)
        max_concurrency: int | None = Field(default=None, ge=1)
        temperature: float = Field(default=0.0, ge=0, le=1)

    def __init__(self, target: str, options: dict | None, defaults: BackendDefaults):
        super().__init__(target, options, defaults)
        self.max_concurrency = self.options.max_concurrency or defaults.max_concurrency

    @property
    def endpoint(self) -> str | None:
        return self.options.base_url

    @classmethod
    def preload(cls) -> None:
        import langchain_anthropic  # noqa: F401  about 3 s

    def chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        from langchain_anthropic import ChatAnthropic

        extra = {"base_url": self.options.base_url} if self.options.base_url else {}
        return ChatAnthropic(
            model=self.model,
            api_key=self.api_key(),
            max_tokens=max_tokens,
            temperature=self.options.temperature,
            timeout=self.options.timeout or self.defaults.timeout_s,
            max_retries=0,
            **extra,
        )

    def messages(self, request: LLMRequest) -> list[BaseMessage]:
        from langchain_core.messages import HumanMessage

        return [HumanMessage(content=_content(request))]  # type: ignore[arg-type]

    def is_transient(self, error: BaseException) -> bool:
        import anthropic

        return isinstance(
            error, anthropic.RateLimitError | anthropic.InternalServerError | anthropic.APIConnectionError
        )

    def submit_batch(self, requests: list[tuple[str, LLMRequest]]) -> str:
        return self._sdk().messages.batches.create(requests=[  # type: ignore[misc]
            {"custom_id": custom_id, "params": {
                "model": self.model, "max_tokens": request.max_tokens, "temperature": self.options.temperature,
                "messages": [{"role": "user", "content": _content(request)}]}}
            for custom_id, request in requests]).id

    def poll_batch(self, batch_id: str) -> BatchPoll:
        client = self._sdk()
        if client.messages.batches.retrieve(batch_id).processing_status != "ended":
            return BatchPoll(finished=False)
        return BatchPoll(finished=True, results=[_batch_result(line.model_dump())
                                                 for line in client.messages.batches.results(batch_id)])

    def _sdk(self):
        import anthropic

        return anthropic.Anthropic(api_key=self.api_key(), base_url=self.options.base_url,
                                   timeout=self.options.timeout or self.defaults.timeout_s)


def _content(request: LLMRequest) -> str | list[dict[str, Any]]:
    """The user message's content: the prompt, or its shared prefix as a cached block and the rest."""
    if not request.cache_prefix or request.cache_prefix == len(request.prompt):
        return request.prompt
    return [{"type": "text", "text": request.prompt[:request.cache_prefix], "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": request.prompt[request.cache_prefix:]}]


def _batch_result(line: dict[str, Any]) -> BatchResult:
    """One entry of a Message Batch's results: succeeded, errored, expired or canceled."""
    result = line["result"]
    if result["type"] != "succeeded":
        error = (result.get("error") or {}).get("error") or {}
        reason = error.get("message") or {"expired": "the batch expired before this request ran",
                                          "canceled": "the batch was cancelled"}.get(result["type"], "no reason given")
        return BatchResult(custom_id=line["custom_id"], error=f"{result['type']}: {reason}")
    message = result["message"]
    text = "".join(block.get("text", "") for block in message["content"] if block.get("type") == "text")
    usage = message.get("usage") or {}
    read, written = usage.get("cache_read_input_tokens") or 0, usage.get("cache_creation_input_tokens") or 0
    return BatchResult(custom_id=line["custom_id"], completion=Completion(
        text=text, input_tokens=usage.get("input_tokens", 0) + read + written,  # Anthropic's excludes the cache's
        output_tokens=usage.get("output_tokens", 0), cache_read_tokens=read, cache_write_tokens=written))


@hookimpl
def register_backends(register) -> None:
    register(AnthropicBackend)
