from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from slimkit._io import atomic_copy, atomic_path, atomic_write_text, sha256_file


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["out.txt"]  # no temporary file left behind


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(previous)
    # like open(): readable by others, not the 0600 of a private temporary file
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


def test_a_failed_copy_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the compress export copied model.safetensors / model.onnx with plain copies: a copy
    # killed half-way left half a file under the final name
    source, target = tmp_path / "new.onnx", tmp_path / "model.onnx"
    source.write_bytes(b"new" * 1000)
    target.write_bytes(b"old")

    def half_copy(src: Path, dst: Path) -> None:
        Path(dst).write_bytes(Path(src).read_bytes()[:10])
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(shutil, "copyfile", half_copy)
        with pytest.raises(KeyboardInterrupt):
            atomic_copy(source, target)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "new.onnx"]
    assert atomic_copy(source, target) == target
    assert target.read_bytes() == source.read_bytes()
    assert sha256_file(target) == hashlib.sha256(b"new" * 1000).hexdigest()
