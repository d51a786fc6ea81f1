"""scripts/delta_pack.py: a student packed as its difference from the teacher comes back whole."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from safetensors.torch import load_file

from slimkit.models import load_hf, save_hf
from slimkit.testing import TINY_SENTENCES
from slimkit.text import EncoderPruneConfig, prune_encoder

pytest.importorskip("transformers")


def test_pack_then_unpack_restores_every_byte(
    load_script: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    from slimkit.testing import tiny_bert_dir

    delta_pack = load_script("scripts/delta_pack.py")
    teacher_dir = tiny_bert_dir(tmp_path / "teacher")
    student = prune_encoder(
        load_hf(teacher_dir), EncoderPruneConfig(heads=0.5, ffn=0.5), list(TINY_SENTENCES)
    )
    save_hf(student, tmp_path / "students" / "s")
    original = tmp_path / "students" / "s"
    chunks = delta_pack.pack(teacher_dir, [original], tmp_path / "chunks", chunk_mb=0.01)
    assert len(chunks) > 1  # split into pieces of at most 10 KiB
    assert all(c.stat().st_size <= int(0.01 * 2**20) for c in chunks)
    # The word embeddings were not pruned: identical to the teacher's, so they do not travel.
    with tarfile.open(fileobj=io.BytesIO(b"".join(c.read_bytes() for c in chunks))) as tar:
        manifest = json.load(tar.extractfile("s/delta.json"))  # type: ignore[arg-type]
    table = next(k for k in load_file(original / "model.safetensors") if "word_embeddings" in k)
    assert table in manifest["same_tensors"] and "modules.json" in manifest["same_files"]
    (rebuilt,) = delta_pack.unpack(teacher_dir, tmp_path / "chunks", tmp_path / "back")
    files = sorted(p.relative_to(original) for p in original.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(rebuilt) for p in rebuilt.rglob("*") if p.is_file())
    for name in files:
        assert (original / name).read_bytes() == (rebuilt / name).read_bytes(), name
