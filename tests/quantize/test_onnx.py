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
    Int8WeightOnlyConfig,
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


def test_onnxruntime_int8_agrees_with_slimkits_simulation(
    deployed: tuple[nn.Module, Path], trained: nn.Module, qdata: Splits, test_inputs: torch.Tensor
) -> None:
    # The deployed graph (ONNX Runtime's quantizer on slimkit's ranges) and slimkit's own
    # simulated int8 model (the torch backend's and QAT's) agree to the documented tolerance.
    from slimkit.quantize import sqnr
    from slimkit.quantize._static import quantize_static

    simulated, _ = quantize_static(trained, Int8StaticConfig(calib_batches=4), calib_data=qdata)
    with torch.no_grad():
        expected, runtime = simulated(test_inputs), OrtModule(deployed[1])(test_inputs)
    agreement = float((expected.argmax(1) == runtime.argmax(1)).float().mean())
    assert agreement >= 0.98
    assert float(sqnr(expected, runtime)) >= 25.0


def test_qdq_graph_reaches_int8_kernels(deployed: tuple[nn.Module, Path], tmp_path: Path) -> None:
    assert _default_session_kernels(deployed[1], tmp_path) == _slimkit_session_kernels(
        deployed[1], tmp_path
    )
    ops = optimized_op_types(deployed[1])
    assert ops["QLinearConv"] == 2
    assert ops["QGemm"] + ops["QLinearMatMul"] == 2
    assert not FLOAT_COMPUTE & set(ops)
    assert INT8_KERNELS & set(ops)
    # Only the input is quantized; no Q/DQ pair is left between two int8 kernels.
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 0


def _default_session_kernels(path: Path, tmp_path: Path) -> list[tuple[str, str]]:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "default-optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(options.optimized_model_filepath).graph
    return [(n.domain, n.op_type) for n in graph.node]


def _slimkit_session_kernels(path: Path, tmp_path: Path) -> list[tuple[str, str]]:
    import onnx

    optimized = tmp_path / "slimkit-optimized.onnx"
    _onnx.session(path, optimized=str(optimized))
    return [(n.domain, n.op_type) for n in onnx.load(str(optimized)).graph.node]


def test_a_float_stem_pools_in_float_in_a_default_session(
    trained: nn.Module, qdata: Splits, tmp_path: Path
) -> None:
    # A default ONNX Runtime session propagates QDQ: it would hoist the QuantizeLinear above
    # the max-pool and pool uint8 NCHW data in a slow kernel (seed-cnn: 3.05 vs 0.54 ms). The
    # shipped graph pins that QuantizeLinear, so a user's default session runs what slimkit's
    # session runs: the pool in float, before the int8 graph.
    q = quantize(trained, Int8StaticConfig(calib_batches=2, exclude=("conv1",)), calib_data=qdata)
    path = export_onnx(q, tmp_path / "stem.onnx", qdata.example_input(1))
    default = _default_session_kernels(path, tmp_path)
    assert default == _slimkit_session_kernels(path, tmp_path)
    ops = [op for _, op in default]
    assert ops[0] == "Conv" and "QLinearConv" in ops
    assert ops.index("MaxPool") < ops.index("QuantizeLinear")

    x = qdata.example_input(16)
    with torch.no_grad():
        agreement = (OrtModule(path)(x).argmax(1) == q(x).argmax(1)).float().mean()
    assert agreement >= 0.9


def test_pinning_is_what_keeps_the_pool_float(
    trained: nn.Module, qdata: Splits, tmp_path: Path
) -> None:
    # The same graph without the pinning: a default session pools uint8 data.
    import onnx

    from slimkit.quantize import _qdq_passes

    q = quantize(trained, Int8StaticConfig(calib_batches=2, exclude=("conv1",)), calib_data=qdata)
    graph = q.proto  # the quantizer's graph, before the deployed-graph rewrites
    pinned = _qdq_passes.deployable(graph)
    plain = onnx.ModelProto()
    plain.CopyFrom(graph)
    _qdq_passes.float_outputs(plain)
    _qdq_passes.padded_stems(plain)
    onnx.save(pinned, str(tmp_path / "pinned.onnx"))
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    plain_ops = [op for _, op in _default_session_kernels(tmp_path / "plain.onnx", tmp_path)]
    pinned_ops = [op for _, op in _default_session_kernels(tmp_path / "pinned.onnx", tmp_path)]
    assert plain_ops.index("QuantizeLinear") < plain_ops.index("MaxPool")
    assert pinned_ops.index("MaxPool") < pinned_ops.index("QuantizeLinear")
    x = qdata.example_input(32).numpy()
    import onnxruntime as ort

    outputs = [
        ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"]).run(
            None, {"input": x}
        )[0]
        for name in ("plain.onnx", "pinned.onnx")
    ]
    assert (outputs[0] == outputs[1]).all()


def test_float_export_matches_pytorch(trained: nn.Module, qdata: Splits, tmp_path: Path) -> None:
    path = export_onnx(trained, tmp_path / "f.onnx", qdata.example_input(1))
    x = qdata.example_input(8)
    with torch.no_grad():
        torch.testing.assert_close(OrtModule(path)(x), trained(x), rtol=1e-4, atol=1e-4)


def test_weight_only_graph_reads_int8_weights(
    trained: nn.Module, qdata: Splits, tmp_path: Path
) -> None:
    import onnx

    q = quantize(trained, Int8WeightOnlyConfig())
    path = export_onnx(q, tmp_path / "w.onnx", qdata.example_input(1))
    graph = onnx.load(str(path)).graph
    int8 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert int8 == {f"{layer}.weight.int8" for layer in ("conv1", "conv2", "fc1", "fc2")}
    x = qdata.example_input(16)
    with torch.no_grad():
        torch.testing.assert_close(OrtModule(path)(x), q(x), rtol=1e-4, atol=1e-4)


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


def test_a_stem_over_fewer_than_4_channels_reads_zero_point_padding(tmp_path: Path) -> None:
    # ONNX Runtime's fast int8 conv kernel wants input channels in multiples of 4.
    import copy

    import onnx

    from slimkit.quantize import _qdq_passes

    model = slimkit.create_model("resnet20").eval()
    x = torch.randn(16, 1, 28, 28)
    q = quantize(model, Int8StaticConfig(), calib_data=[x])
    padded = export_onnx(q, tmp_path / "padded.onnx", x[:1])
    unpadded = copy.deepcopy(q.proto)
    _qdq_passes.float_outputs(unpadded)
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(unpadded.SerializeToString())

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
        if node.input[1].endswith(".pinned_scale"):  # per channel on purpose: _qdq_passes
            continue
        assert all(list(inits[name].dims) == [] for name in node.input[1:])


class _Eigvals(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigvals(x[0, 0]).real


def test_export_of_untranslatable_op_names_it(tmp_path: Path) -> None:
    with pytest.raises(
        UnsupportedOpError, match=r"_Eigvals: no ONNX translation of aten.linalg_eig;"
    ):
        export_onnx(_Eigvals(), tmp_path / "c.onnx", torch.randn(1, 1, 4, 4))
    assert not (tmp_path / "c.onnx").exists()


class _FloatOps(nn.Module):
    """Ops between quantized convs: sigmoid, SiLU and concatenation (int8 in ONNX Runtime),
    an exponential (float: ONNX Runtime has no int8 kernel for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)
        self.act = nn.SiLU()
        self.fc = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        y = torch.cat([torch.sigmoid(y), self.act(y)], dim=1)
        return self.fc(torch.exp(self.conv2(y)).flatten(1))


def test_float_ops_are_reported_and_still_deployed(qdata: Splits, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _FloatOps().eval()
    x = qdata.example_input(64)
    q = quantize(model, Int8StaticConfig(), calib_data=[x])
    report = quantization_report(q)
    assert {entry["op"] for entry in report["float_ops"]} == {"exp (Exp)"}
    assert report["quantized"] == ["conv1", "conv2", "fc"]
    path = export_onnx(q, tmp_path / "f.onnx", x[:1])
    kernels = optimized_op_types(path)
    assert kernels["QLinearConv"] == 2 and kernels["QGemm"] == 1
    assert kernels["QLinearSigmoid"] == 1 and kernels["QLinearConcat"] == 1 and kernels["Exp"] == 1
    with torch.no_grad():
        error = (OrtModule(path)(x) - model(x)).abs().max()
    assert error < 0.05 * model(x).abs().max()


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
