from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit
from slimkit import Splits, UnsupportedOpError
from slimkit.errors import MissingDependencyError
from slimkit.quantize import (
    FLOAT_COMPUTE,
    INT8_KERNELS,
    Int8StaticConfig,
    OrtModule,
    _onnx,
    export_onnx,
    optimized_op_types,
    quantization_report,
    quantize,
)

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def deployed(trained: nn.Module, qdata: Splits, tmp_path_factory: pytest.TempPathFactory):
    q = quantize(trained, Int8StaticConfig(calib_batches=4), calib_data=qdata)
    path = export_onnx(q, tmp_path_factory.mktemp("onnx") / "q.onnx", qdata.example_input(1))
    return q, path


def test_onnxruntime_int8_agrees_with_simulation(
    deployed: tuple[nn.Module, Path], test_inputs: torch.Tensor
) -> None:
    q, path = deployed
    with torch.no_grad():
        simulated, runtime = q(test_inputs), OrtModule(path)(test_inputs)
    agreement = float((simulated.argmax(1) == runtime.argmax(1)).float().mean())
    assert agreement >= 0.99
    assert torch.allclose(simulated, runtime, atol=0.5)


def test_qdq_graph_reaches_int8_kernels(deployed: tuple[nn.Module, Path]) -> None:
    ops = optimized_op_types(deployed[1])
    assert ops["QLinearConv"] == 2
    assert ops["QGemm"] + ops["QLinearMatMul"] == 2
    assert not FLOAT_COMPUTE & set(ops)
    assert INT8_KERNELS & set(ops)
    # Only the input is quantized; no Q/DQ pair is left between two int8 kernels.
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 0


def test_a_float_stem_pools_in_float_before_the_int8_graph(
    trained: nn.Module, qdata: Splits, tmp_path: Path
) -> None:
    # With QDQ propagation on, ONNX Runtime would hoist the QuantizeLinear above the max-pool
    # and pool uint8 NCHW data, slower than the float conv saves (seed-cnn: 4.7 vs 1.8 ms).
    import onnx

    q = quantize(trained, Int8StaticConfig(calib_batches=2, exclude=("conv1",)), calib_data=qdata)
    path = export_onnx(q, tmp_path / "stem.onnx", qdata.example_input(1))
    optimized = tmp_path / "stem-optimized.onnx"
    _onnx.session(path, optimized=str(optimized))
    ops = [node.op_type for node in onnx.load(str(optimized)).graph.node]
    assert ops[0] == "Conv" and "QLinearConv" in ops
    assert ops.index("MaxPool") < ops.index("QuantizeLinear")
    x = qdata.example_input(16)
    with torch.no_grad():
        agreement = (OrtModule(path)(x).argmax(1) == q(x).argmax(1)).float().mean()
    assert agreement >= 0.9


def test_float_export_matches_pytorch(trained: nn.Module, qdata: Splits, tmp_path: Path) -> None:
    path = export_onnx(trained, tmp_path / "f.onnx", qdata.example_input(1))
    x = qdata.example_input(8)
    with torch.no_grad():
        torch.testing.assert_close(OrtModule(path)(x), trained(x), rtol=1e-4, atol=1e-4)


def test_resnet_residual_adds_run_as_int8_kernels(tmp_path: Path) -> None:
    model = slimkit.create_model("resnet20").eval()
    x = torch.randn(8, 1, 28, 28)
    q = quantize(model, Int8StaticConfig(), calib_data=[x])
    path = export_onnx(q, tmp_path / "r.onnx", x[:1])
    ops = optimized_op_types(path)
    # 9 residual adds (their ReLU fused) stay int8: no DQ → Add → Q round trip through float.
    assert ops["QLinearConv"] == 21 and ops["QLinearAdd"] == 9 and ops["QGemm"] == 1
    assert ops["QLinearGlobalAveragePool"] == 1
    assert not FLOAT_COMPUTE & set(ops)
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 0  # the input only
    with torch.no_grad():
        assert torch.allclose(OrtModule(path)(x), q(x), atol=0.1)


def test_a_stem_over_fewer_than_4_channels_reads_zero_point_padding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ONNX Runtime's fast symmetric int8 conv kernel needs input channels in multiples of 4.
    import onnx

    model = slimkit.create_model("resnet20").eval()
    x = torch.randn(16, 1, 28, 28)
    q = quantize(model, Int8StaticConfig(), calib_data=[x])
    padded = export_onnx(q, tmp_path / "padded.onnx", x[:1])
    monkeypatch.setattr(_onnx, "SYM_CONV_CHANNELS", 1)
    plain = export_onnx(q, tmp_path / "plain.onnx", x[:1])

    def stem_weight_shape(path: Path) -> list[int]:
        graph = onnx.load(str(path)).graph
        first_conv = next(n for n in graph.node if n.op_type == "Conv")
        dq = next(n for n in graph.node if n.output[0] == first_conv.input[1])
        return next(list(i.dims) for i in graph.initializer if i.name == dq.input[0])

    assert stem_weight_shape(padded) == [16, 4, 3, 3]
    assert stem_weight_shape(plain) == [16, 1, 3, 3]
    graph_ops = [n.op_type for n in onnx.load(str(padded)).graph.node]
    assert graph_ops.count("Pad") == 1  # the stem only: every other conv reads 16+ channels
    assert optimized_op_types(padded)["QLinearConv"] == 21
    with torch.no_grad():
        assert torch.equal(OrtModule(padded)(x), OrtModule(plain)(x))


def test_activation_scales_are_scalars(deployed: tuple[nn.Module, Path]) -> None:
    # ONNX Runtime fuses QLinearAdd only for rank-0 scales; a [1] vector silently blocks it.
    import onnx

    graph = onnx.load(str(deployed[1])).graph
    inits = {i.name: i for i in graph.initializer}
    activation_qdq = [
        n
        for n in graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in inits
    ]
    assert activation_qdq
    for node in activation_qdq:
        assert all(list(inits[name].dims) == [] for name in node.input[1:])


class _Cumsum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=1)


def test_export_of_untranslatable_op_names_it(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError, match=r"'cumsum'.*op cumsum"):
        export_onnx(_Cumsum(), tmp_path / "c.onnx", torch.randn(1, 1, 4, 4))


class _FloatOps(nn.Module):
    """Ops without an int8 kernel between quantized convs: sigmoid, SiLU, concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)
        self.act = nn.SiLU()
        self.fc = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        y = torch.cat([torch.sigmoid(y), self.act(y)], dim=1)
        return self.fc(torch.relu(self.conv2(y)).flatten(1))


def test_float_ops_are_reported_and_still_deployed(qdata: Splits, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _FloatOps().eval()
    x = qdata.example_input(64)
    q = quantize(model, Int8StaticConfig(), calib_data=[x])
    ops = {entry["op"] for entry in quantization_report(q)["float_ops"]}
    assert ops == {"sigmoid (sigmoid)", "act (SiLU)", "cat (cat)"}
    path = export_onnx(q, tmp_path / "f.onnx", x[:1])  # no crash: they run in float
    kernels = optimized_op_types(path)
    assert kernels["QLinearConv"] == 2 and kernels["QGemm"] == 1
    with torch.no_grad():
        assert torch.allclose(OrtModule(path)(x), q(x), atol=0.05)


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def fake(name: str, *args: object) -> object:
        if name == "onnxruntime":
            raise ImportError(name)
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(MissingDependencyError, match=r"slimkit\[onnx\]"):
        _onnx.require("onnxruntime")


def test_quantize_for_onnxruntime_without_onnx_fails_before_calibrating(
    trained: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    real = importlib.import_module

    def fake(name: str, *args: object) -> object:
        if name == "onnx":
            raise ImportError(name)
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(MissingDependencyError, match=r"pip install 'slimkit\[onnx\]'"):
        quantize(trained, Int8StaticConfig(), calib_data=None)
