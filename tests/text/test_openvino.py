"""OpenVINO for sentence encoders: the float graph as exported, and NNCF's int8 as an IR."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slimkit.models import SentenceEncoder
from slimkit.testing import TINY_SENTENCES
from slimkit.text import export_onnx
from slimkit.text._openvino import (
    OvEncoder,
    calibration_batches,
    copy_graph,
    graph_bytes,
    graph_files,
    quantize_openvino,
)

pytest.importorskip("openvino")
pytest.importorskip("onnx")
TEXTS = list(TINY_SENTENCES)


def test_openvino_runs_the_exported_graph_as_pytorch_does(
    tiny: SentenceEncoder, tmp_path: Path
) -> None:
    path = export_onnx(tiny, tmp_path / "fp32.onnx")
    ov = OvEncoder(path, tiny.tokenizer, max_length=tiny.max_length)
    torch.testing.assert_close(
        ov.encode(TEXTS, batch_size=5), tiny.encode(TEXTS), atol=1e-5, rtol=0
    )
    fixed = ov.tokenize(TEXTS[:3], max_length=20, pad_to_max=True)  # another shape
    torch.testing.assert_close(ov(**fixed), tiny(**fixed), atol=1e-5, rtol=0)


def test_calibration_batches_are_padded_like_deployment(tiny: SentenceEncoder) -> None:
    batches = calibration_batches(tiny, TEXTS * 3, 24)
    assert len(batches) == -(-len(TEXTS) * 3 // 8)
    assert all(b["input_ids"].shape[1] == 24 for b in batches)
    assert sum(len(b["input_ids"]) for b in batches) == len(TEXTS) * 3
    with pytest.raises(ValueError, match="calibration sentences"):
        calibration_batches(tiny, [], 24)


def test_nncf_int8_is_close_and_written_whole(tiny: SentenceEncoder, tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    fp32 = export_onnx(tiny, tmp_path / "fp32.onnx")
    target = quantize_openvino(fp32, tmp_path / "int8.xml", calibration_batches(tiny, TEXTS, 32))
    assert [f.name for f in graph_files(target)] == ["int8.xml", "int8.bin"]
    assert all(f.is_file() for f in graph_files(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx", "int8.bin", "int8.xml"]
    int8 = OvEncoder(target, tiny.tokenizer, max_length=tiny.max_length).encode(TEXTS)
    cosine = torch.nn.functional.cosine_similarity(int8, tiny.encode(TEXTS))
    assert float(cosine.min()) > 0.99
    assert 'element_type="i8"' in target.read_text()  # int8 weights, not float ones
    out = tmp_path / "out"
    out.mkdir()
    copied = copy_graph(target, out / "model.xml")
    assert sorted(p.name for p in out.iterdir()) == ["model.bin", "model.xml"]
    assert graph_bytes(copied) == graph_bytes(target) > target.stat().st_size
