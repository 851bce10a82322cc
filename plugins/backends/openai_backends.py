"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp server) via ``ChatOpenAI``.

The SDK's own retries are off (``max_retries=0``): the one call path retries every backend
the same way and counts the attempts in the ledger. Redirects are never followed (the SDK's
default is to follow them): a server the URL policy allows must not pass the prompt on to one it
refuses, so a 3xx answer is an error. Batch mode (OpenAI only) goes through the
``openai`` SDK: a JSONL file of chat-completion bodies, ``batches.create``, ``batches.retrieve``
and the output and error files.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lookups import (
    Backend,
    BackendDefaults,
    BatchPoll,
    BatchResult,
    Completion,
    LLMRequest,
    UnknownBackendError,
    first_token_logprobs,
    hookimpl,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

TOP_LOGPROBS = 10
BATCH_ENDPOINT = "/v1/chat/completions"
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")


class _OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, description="Override the API URL (proxies, tests).")
    timeout: float | None = Field(default=None, gt=0, description="Seconds; default settings.llm_timeout_s.")
    max_concurrency: int | None = Field(default=None, ge=1, description="Default settings.llm_max_concurrency.")
    temperature: float = Field(default=0.0, ge=0, le=2)


class _CompatibleOptions(_OpenAIOptions):
    guided_choice: bool = Field(default=False, description=(
        "The server restricts an answer to given choices by vLLM's guided_choice (vLLM does; "
        "others may ignore it): a judge's answer is then Yes or No by construction."))


class OpenAIBackend(Backend):
    # OpenAI's logit_bias needs the model's token ids (its tokenizer), and a structured output
    # changes the answer to JSON and its first token's logprobs, which P(Yes) reads: answers
    # stay free and are parsed.
    name = "openai"
    description = "OpenAI chat models (langchain-openai), e.g. openai:gpt-4o, openai:gpt-4-1106-preview"
    needs_key = True
    key_env_var = "OPENAI_API_KEY"
    supports_logprobs = True
    json_mode = True
    default_model = "gpt-4o"
    supports_batch = True
    cache_read_price = 0.5  # OpenAI caches prompts of 1024 tokens or more by itself
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

    @classmethod
    def preload(cls) -> None:
        import langchain_openai  # noqa: F401  about 2 s

    def chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        import openai
        from langchain_openai import ChatOpenAI

        extra = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if logprobs else {}
        return ChatOpenAI(
            http_client=openai.DefaultHttpxClient(follow_redirects=False),
            http_async_client=openai.DefaultAsyncHttpxClient(follow_redirects=False),
            model=self.model,
            api_key=self.api_key() or "not-needed",
            base_url=self.base_url,
            max_tokens=max_tokens,
            temperature=self.options.temperature,
            timeout=self.options.timeout or self.defaults.timeout_s,
            max_retries=0,
            **extra,
        )

    def sampling(self, request: LLMRequest) -> dict[str, Any]:
        """A sampled request's temperature, with its sample index as OpenAI's ``seed``."""
        return {} if request.temperature is None else {"temperature": request.temperature, "seed": request.sample}

    def is_transient(self, error: BaseException) -> bool:
        import openai

        return isinstance(
            error, openai.RateLimitError | openai.InternalServerError | openai.APIConnectionError
        )

    def submit_batch(self, requests: list[tuple[str, LLMRequest]]) -> str:
        lines = [json.dumps({"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT,
                             "body": self._body(request)}) for custom_id, request in requests]
        client = self._sdk()
        upload = client.files.create(file=("requests.jsonl", "\n".join(lines).encode()), purpose="batch")
        return client.batches.create(input_file_id=upload.id, endpoint=BATCH_ENDPOINT,
                                     completion_window="24h").id

    def poll_batch(self, batch_id: str) -> BatchPoll:
        client = self._sdk()
        batch = client.batches.retrieve(batch_id)
        if batch.status in UNFINISHED:
            return BatchPoll(finished=False)
        results = []
        for file_id in (batch.output_file_id, batch.error_file_id):  # an expired batch may have both
            if file_id:
                results += [_batch_result(json.loads(line))
                            for line in client.files.content(file_id).text.splitlines() if line.strip()]
        error = None
        if batch.status != "completed":
            reasons = [e.message for e in (batch.errors.data if batch.errors else None) or [] if e.message]
            error = f"{batch.status}: {'; '.join(reasons) or 'no reason given'}"
        return BatchPoll(finished=True, error=error, results=results)

    def _sdk(self):
        import openai

        return openai.OpenAI(api_key=self.api_key() or "not-needed", base_url=self.base_url,
                             timeout=self.options.timeout or self.defaults.timeout_s,
                             http_client=openai.DefaultHttpxClient(follow_redirects=False))

    def _body(self, request: LLMRequest) -> dict[str, Any]:
        """The chat-completion body ``chat_model`` would send for this request."""
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": request.prompt}],
                                "max_completion_tokens": request.max_tokens,
                                "temperature": self.options.temperature}
        if request.logprobs and self.supports_logprobs:
            body |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        return body


def _batch_result(line: dict[str, Any]) -> BatchResult:
    """A line of a batch's output or error file."""
    response = line.get("response") or {}
    body = response.get("body") or {}
    if line.get("error") or response.get("status_code") != 200:
        reason = (line.get("error") or body.get("error") or {}).get("message") or "no reason given"
        return BatchResult(custom_id=line["custom_id"],
                           error=f"HTTP {response.get('status_code', '?')}: {reason}")
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return BatchResult(custom_id=line["custom_id"], completion=Completion(
        text=choice["message"].get("content") or "", input_tokens=usage.get("prompt_tokens", 0),
        output_tokens=usage.get("completion_tokens", 0), top_logprobs=first_token_logprobs(choice.get("logprobs")),
        cache_read_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0))


class OpenAICompatibleBackend(OpenAIBackend):
    """``openai-compatible:URL:MODEL``, the URL with a path (``http://host:8000/v1``).

    A key is optional: ``OPENAI_COMPATIBLE_API_KEY`` when the server wants one. With
    ``-o guided_choice=true`` (a vLLM server) a request's choices go as ``guided_choice`` and the
    backend declares that it constrains answers; off by default, since a server that ignores the
    field would answer freely while the summary claimed otherwise.
    """

    name = "openai-compatible"
    description = "Any OpenAI-compatible server by base URL: openai-compatible:http://host:8000/v1:MODEL"
    needs_key = False
    key_env_var = "OPENAI_COMPATIBLE_API_KEY"
    json_mode = False
    default_model = ""
    supports_batch = False  # vLLM, Ollama and llama.cpp servers have no /v1/batches
    cache_read_price = 1.0  # what a server charges for its prefix cache is its own
    Options = _CompatibleOptions
    options: _CompatibleOptions
    # Where it is on, the request's choices enter the cache key (``LLMClient.cache_key``).
    transport_options = OpenAIBackend.transport_options | {"guided_choice"}
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
        self.constrains_choices = self.options.guided_choice

    def choice_arguments(self, choices: tuple[str, ...]) -> dict[str, Any]:
        return {"extra_body": {"guided_choice": list(choices)}}

    @property
    def base_url(self) -> str | None:
        return self.options.base_url or self._url

    def api_key(self) -> str | None:
        return os.environ.get(self.key_env_var or "") or None


@hookimpl
def register_backends(register) -> None:
    register(OpenAIBackend)
    register(OpenAICompatibleBackend)
