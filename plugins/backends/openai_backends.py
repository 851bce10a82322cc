"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp server) via ``ChatOpenAI``.

The SDK's own retries are off (``max_retries=0``): the one call path retries every backend
the same way and counts the attempts in the ledger.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from contract import Backend, BackendDefaults, UnknownBackendError, hookimpl

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

TOP_LOGPROBS = 10


class _OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, description="Override the API URL (proxies, tests).")
    timeout: float | None = Field(default=None, gt=0, description="Seconds; default settings.llm_timeout_s.")
    max_concurrency: int | None = Field(default=None, ge=1, description="Default settings.llm_max_concurrency.")
    temperature: float = Field(default=0.0, ge=0, le=2)


class OpenAIBackend(Backend):
    name = "openai"
    description = "OpenAI chat models (langchain-openai), e.g. openai:gpt-4o, openai:gpt-4-1106-preview"
    needs_key = True
    key_env_var = "OPENAI_API_KEY"
    supports_logprobs = True
    json_mode = True
    default_model = "gpt-4o"
    Options = _OpenAIOptions

    def __init__(self, target: str, options: dict | None, defaults: BackendDefaults):
        super().__init__(target, options, defaults)
        self.max_concurrency = self.options.max_concurrency or defaults.max_concurrency

    @property
    def base_url(self) -> str | None:
        return self.options.base_url or os.environ.get("OPENAI_BASE_URL")

    @property
    def endpoint(self) -> str | None:
        return self.base_url

    def chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        from langchain_openai import ChatOpenAI

        extra = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if logprobs else {}
        return ChatOpenAI(
            model=self.model,
            api_key=self.api_key() or "not-needed",
            base_url=self.base_url,
            max_tokens=max_tokens,
            temperature=self.options.temperature,
            timeout=self.options.timeout or self.defaults.timeout_s,
            max_retries=0,
            **extra,
        )

    def is_transient(self, error: BaseException) -> bool:
        import openai

        return isinstance(
            error, openai.RateLimitError | openai.InternalServerError | openai.APIConnectionError
        )


class OpenAICompatibleBackend(OpenAIBackend):
    """``openai-compatible:URL:MODEL``, the URL with a path (``http://host:8000/v1``).

    A key is optional: ``OPENAI_COMPATIBLE_API_KEY`` when the server wants one.
    """

    name = "openai-compatible"
    description = "Any OpenAI-compatible server by base URL: openai-compatible:http://host:8000/v1:MODEL"
    needs_key = False
    key_env_var = "OPENAI_COMPATIBLE_API_KEY"
    json_mode = False
    default_model = ""
    _SPEC: ClassVar[re.Pattern] = re.compile(r"^(https?://[^/\s]+/[^:\s]*):(.+)$")

    def __init__(self, target: str, options: dict | None, defaults: BackendDefaults):
        match = self._SPEC.match(target)
        if not match:
            raise UnknownBackendError(
                f"openai-compatible spec needs a base URL with a path and a model: "
                f"'openai-compatible:http://host:8000/v1:MODEL', got {target!r}"
            )
        self._url = match.group(1)
        super().__init__(match.group(2), options, defaults)

    @property
    def base_url(self) -> str | None:
        return self.options.base_url or self._url

    def api_key(self) -> str | None:
        return os.environ.get(self.key_env_var or "") or None


@hookimpl
def register_backends(register) -> None:
    register(OpenAIBackend)
    register(OpenAICompatibleBackend)
