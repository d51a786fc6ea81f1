from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

import slimkit
from slimkit import Splits
from slimkit.quantize import (
    Bf16Config,
    Fp16Config,
    Int4WeightOnlyConfig,
    Int8DynamicConfig,
    Int8StaticConfig,
    Int8WeightOnlyConfig,
    quantization_report,
    quantize,
)

CASES = [
    (Int8StaticConfig(calib_batches=2), "onnxruntime"),
    pytest.param(
        Int8StaticConfig(calib_batches=2, observer="percentile"),
        "torch",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("torchao") is None, reason="torchao is not installed"
        ),
    ),
    (Int8WeightOnlyConfig(), "onnxruntime"),
    (Int8DynamicConfig(), "torch"),
    (Int4WeightOnlyConfig(group_size=16), "torch"),
    (Fp16Config(), "torch"),
    (Bf16Config(), "torch"),
]


@pytest.mark.parametrize(("cfg", "backend"), CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_save_load_round_trip_reproduces_outputs(
    trained: nn.Module, qdata: Splits, tmp_path: Path, cfg: object, backend: str
) -> None:
    q = quantize(trained, cfg, calib_data=qdata, backend=backend)
    path = slimkit.save(q, tmp_path / "q.safetensors")
    restored = slimkit.load(path)
    x = qdata.example_input(32)
    with torch.no_grad():
        assert torch.equal(restored(x), q(x))
    assert restored.slimkit_spec["quantization"]["config"] == cfg.to_dict()  # type: ignore[attr-defined]
    assert (tmp_path / "q.onnx").is_file() == (backend == "onnxruntime")
    # Keys rebuilt on load (static: quantized, folded) are not stored but still reported.
    assert quantization_report(restored) == quantization_report(q)


def test_int8_weights_are_stored_as_int8_and_the_artifact_is_4x_smaller(
    qdata: Splits, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = slimkit.create_model("seed-cnn").eval()
    fp32 = slimkit.save(model, tmp_path / "fp32.safetensors")
    q = quantize(model, Int8StaticConfig(calib_batches=1), calib_data=qdata)
    int8 = slimkit.save(q, tmp_path / "int8.safetensors")
    spec = slimkit.read_spec(int8)
    with safe_open(str(int8), framework="pt") as handle:
        assert handle.get_tensor("fc1.weight").dtype == torch.int8
        assert handle.get_tensor("fc1.weight@int8-scale").dtype == torch.float32
    assert spec["format_version"] == 3 and slimkit.read_spec(fp32)["format_version"] == 1
    assert fp32.stat().st_size / int8.stat().st_size >= 3.9


def test_int4_packs_two_weights_per_byte(trained: nn.Module, tmp_path: Path) -> None:
    q = quantize(trained, Int4WeightOnlyConfig(group_size=16), backend="torch")
    path = slimkit.save(q, tmp_path / "q4.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        fc1 = handle.get_tensor("fc1.weight_packed")
    assert fc1.dtype == torch.uint8 and list(fc1.shape) == [64, 784 // 2]


def test_onnx_backend_refuses_schemes_it_cannot_deploy(trained: nn.Module) -> None:
    with pytest.raises(ValueError, match="backend='torch'"):
        quantize(trained, Fp16Config())
