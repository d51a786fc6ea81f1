"""ONNX export and int8: ONNX Runtime and PyTorch agree with the float encoder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from slimkit.models import SentenceEncoder
from slimkit.quantize import sqnr
from slimkit.testing import TINY_SENTENCES
from slimkit.text import (
    EncoderPruneConfig,
    OrtEncoder,
    export_onnx,
    prune_encoder,
    quantize_onnx,
    quantize_torch_dynamic,
    tensor_bytes,
)

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
TEXTS = list(TINY_SENTENCES)


def test_onnx_float_export_computes_the_same_embeddings(
    tiny: SentenceEncoder, tmp_path: Path
) -> None:
    pruned = prune_encoder(tiny, EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2"), TEXTS)
    path = export_onnx(pruned, tmp_path / "fp32.onnx")
    ort = OrtEncoder(path, pruned.tokenizer, max_length=pruned.max_length)
    torch.testing.assert_close(
        ort.encode(TEXTS, batch_size=5), pruned.encode(TEXTS), atol=1e-5, rtol=0
    )
    fixed = ort.tokenize(TEXTS[:2], max_length=24, pad_to_max=True)  # other shapes than traced
    torch.testing.assert_close(ort(**fixed), pruned(**fixed), atol=1e-5, rtol=0)


def test_int8_on_onnx_runtime_is_close_and_smaller(tiny: SentenceEncoder, tmp_path: Path) -> None:
    fp32 = export_onnx(tiny, tmp_path / "fp32.onnx")
    int8 = quantize_onnx(fp32, tmp_path / "int8.onnx")
    ort = OrtEncoder(int8, tiny.tokenizer, max_length=tiny.max_length)
    graph = onnx.load(str(int8)).graph
    ops = Counter(node.op_type for node in graph.node)
    assert ops["MatMulInteger"] == 2 * 6  # q, k, v, attention output, FFN in and out per layer
    assert ops["MatMul"] == 2 * 2  # only the attention products stay float
    weights = {i.name: i.data_type for i in graph.initializer}
    assert weights["encoder.backbone.embeddings.word_embeddings.weight_quantized"] in (
        onnx.TensorProto.INT8,
        onnx.TensorProto.UINT8,
    )
    assert int8.stat().st_size < fp32.stat().st_size
    assert sqnr(tiny.encode(TEXTS), ort.encode(TEXTS)) > 15.0


def test_int8_on_pytorch_is_close_and_smaller(tiny: SentenceEncoder) -> None:
    quantized = quantize_torch_dynamic(tiny)
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    modules = list(quantized.backbone.modules())
    assert sum(isinstance(m, dynamic) for m in modules) == 2 * 6 + 1  # the pooler's too
    assert not any(type(m) is torch.nn.Linear for m in modules)
    assert sqnr(tiny.encode(TEXTS), quantized.encode(TEXTS)) > 15.0
    assert tensor_bytes(quantized) < tensor_bytes(tiny)
