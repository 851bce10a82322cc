"""Anthropic chat models via ``ChatAnthropic``. No logprobs: P(Yes) stays empty."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from contract import Backend, BackendDefaults, hookimpl

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class AnthropicBackend(Backend):
    name = "anthropic"
    description = "Anthropic chat models (langchain-anthropic), e.g. anthropic:claude-sonnet-4-5"
    needs_key = True
    key_env_var = "ANTHROPIC_API_KEY"
    supports_logprobs = False
    json_mode = False
    max_context = 200_000
    default_model = "claude-sonnet-4-5"

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

    def is_transient(self, error: BaseException) -> bool:
        import anthropic

        return isinstance(
            error, anthropic.RateLimitError | anthropic.InternalServerError | anthropic.APIConnectionError
        )


@hookimpl
def register_backends(register) -> None:
    register(AnthropicBackend)
