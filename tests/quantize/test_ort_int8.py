"""int8 for ONNX Runtime: PyTorch's exporter, then ONNX Runtime's quantizer on slimkit's ranges."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit
from slimkit import DataError, UnsupportedOpError
from slimkit.quantize import (
    Int8StaticConfig,
    optimized_op_types,
    quantization_report,
    quantize,
    sqnr,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _q(model: nn.Module, x: torch.Tensor, **cfg: object) -> nn.Module:
    return quantize(model, Int8StaticConfig(**cfg), calib_data=[x])  # type: ignore[arg-type]


def test_seed_cnn_round_trips_bit_exactly_and_stores_int8(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = slimkit.create_model("seed-cnn").eval()
    x = torch.randn(32, 1, 28, 28)
    q = _q(model, x, observer="percentile")
    assert quantization_report(q)["quantized"] == ["conv1", "conv2", "fc1", "fc2"]
    with torch.no_grad():
        y = q(x)
        agreement = float((y.argmax(1) == model(x).argmax(1)).float().mean())
    assert agreement >= 0.9
    path = slimkit.save(q, tmp_path / "q.safetensors")
    fp32 = slimkit.save(model, tmp_path / "f.safetensors")
    assert fp32.stat().st_size / path.stat().st_size >= 3.5
    ops = optimized_op_types(tmp_path / "q.onnx")
    assert ops["QLinearConv"] == 2 and ops["QGemm"] == 2 and "Conv" not in ops
    restored = slimkit.load(path)
    with torch.no_grad():
        assert torch.equal(restored(x), y)


def test_excluded_layer_stays_float() -> None:
    torch.manual_seed(0)
    model = slimkit.create_model("seed-cnn").eval()
    q = _q(model, torch.randn(16, 1, 28, 28), exclude=("conv1",))
    report = quantization_report(q)
    assert "conv1" not in report["quantized"]
    expected = {"node": "conv1", "op": "conv1 (Conv2d)", "reason": "excluded by the config"}
    assert report["float_ops"][0] == expected


def test_a_torchvision_model_with_its_input_adapter_quantizes() -> None:
    torch.manual_seed(0)
    model = slimkit.create_model("torchvision:mobilenet_v3_small").eval()
    q = _q(model, torch.randn(4, 1, 28, 28))
    report = quantization_report(q)
    assert len(report["quantized"]) == 54  # every conv and linear layer
    assert report["folded"]  # BatchNorm folded inside the adapter's wrapped model


def test_calibration_data_of_the_wrong_shape_is_a_data_error() -> None:
    model = slimkit.create_model("seed-cnn").eval()
    with pytest.raises(DataError, match="does not fit"):
        _q(model, torch.randn(4, 1, 20, 20))


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # control flow on values: torch.export cannot capture it
            return self.fc(x)
        return -self.fc(x)


def test_an_unexportable_model_is_refused_with_one_line() -> None:
    with pytest.raises(
        UnsupportedOpError, match=r"torch\.onnx\.export cannot export _DataDependent"
    ):
        _q(_DataDependent().eval(), torch.randn(4, 4))


def test_quantize_is_a_top_level_verb_like_prune_and_distill() -> None:
    from slimkit.quantize import quantize as from_package

    assert slimkit.quantize is from_package and callable(slimkit.quantize)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    q = slimkit.quantize(model, slimkit.Int8StaticConfig(), calib_data=[torch.randn(32, 8)])
    assert quantization_report(q)["quantized"] == ["0", "2"]


class _TokenMixer(nn.Module):
    """A transformer-style block: Linear layers on (batch, tokens, features) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(16, 32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.mlp(h)
        return self.head(h.mean(1))


def test_linear_layers_on_token_inputs_become_int8_gemms_stored_as_int8(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _TokenMixer().eval()
    x = torch.randn(64, 7, 16)
    q = _q(model, x)
    assert quantization_report(q)["quantized"] == ["embed", "mlp.0", "mlp.2", "head"]
    slimkit.save(q, tmp_path / "t.safetensors")
    ops = optimized_op_types(tmp_path / "t.onnx")
    assert ops["QGemm"] == 4 and not {"MatMul", "QLinearMatMul"} & set(ops)
    state = q.state_dict()  # the 3-D layers' weights keep their names and layout: int8
    assert state["mlp.0.weight"].dtype == torch.int8 and state["mlp.0.weight"].shape == (64, 32)
    with torch.no_grad():
        expected = model(x)
        assert float(sqnr(expected, q(x))) > 25.0
    restored = slimkit.load(tmp_path / "t.safetensors", model=_TokenMixer())
    with torch.no_grad():
        assert torch.equal(restored(x), q(x))


class _SharedProjection(nn.Module):
    """One Linear applied twice to token inputs (a shared or tied projection)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.proj(torch.relu(self.proj(x))).mean(1))


def test_a_linear_layer_called_twice_shares_one_int8_gemm_weight() -> None:
    torch.manual_seed(0)
    model = _SharedProjection().eval()
    x = torch.randn(32, 5, 16)
    q = _q(model, x)
    names = [i.name for i in q.proto.graph.initializer]
    assert len(names) == len(set(names))
    gemms = [n for n in q.proto.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 3 and sum(n.doc_string == "proj" for n in gemms) == 2
    assert quantization_report(q)["quantized"] == ["proj", "head"]
    with torch.no_grad():
        assert float(sqnr(model(x), q(x))) > 25.0


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_group_norm_runs_float_between_int8_convs() -> None:
    # PoolFormer's GroupNorm exports as InstanceNormalization, which ONNX Runtime's quantizer
    # failed on ("shared mode is not supported for weight"); it has no int8 kernel anyway.
    import timm

    torch.manual_seed(0)
    model = timm.create_model("poolformer_s12", pretrained=False, num_classes=10).eval()
    x = torch.randn(16, 3, 32, 32)
    q = _q(model, x)
    report = quantization_report(q)
    assert len(report["quantized"]) == sum(
        isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()
    )
    assert any("InstanceNormalization" in f["op"] for f in report["float_ops"])
