from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit
from slimkit import Splits, UnsupportedOpError
from slimkit.errors import MissingDependencyError
from slimkit.quantize import (
    ActQuant,
    Int8StaticConfig,
    Int8WeightOnlyConfig,
    QuantWeight,
    TorchInt8Module,
    quantize,
    sqnr,
    to_qdq_graph,
)


def _hide(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    real = importlib.import_module

    def fake(name: str, *args: object) -> object:
        if name.startswith(prefix):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", fake)


def test_missing_torchao_names_the_extra_before_calibrating(
    trained: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide(monkeypatch, "torchao")
    # calib_data=None would be a DataError: the dependency is checked first.
    with pytest.raises(MissingDependencyError, match=r"slimkit\[torchao\]"):
        quantize(trained, Int8StaticConfig(), calib_data=None, backend="torch")


def test_weight_only_on_torch_needs_no_torchao(
    trained: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide(monkeypatch, "torchao")
    quantize(trained, Int8WeightOnlyConfig(), backend="torch")


needs_torchao = pytest.mark.skipif(
    importlib.util.find_spec("torchao") is None, reason="torchao is not installed"
)


@pytest.fixture(scope="module")
def int8(trained: nn.Module, qdata: Splits) -> nn.Module:
    return quantize(trained, Int8StaticConfig(calib_batches=2), calib_data=qdata, backend="torch")


@needs_torchao
def test_qdq_graph_computes_exactly_the_simulated_model(
    int8: nn.Module, test_inputs: torch.Tensor
) -> None:
    graph = to_qdq_graph(int8)
    assert not any(isinstance(m, ActQuant | QuantWeight) for m in graph.modules())
    weights = [b for name, b in graph.named_buffers() if name.endswith(".weight")]
    assert len(weights) == 4 and all(w.dtype == torch.int8 for w in weights)
    with torch.no_grad():
        assert torch.equal(graph(test_inputs), int8(test_inputs))


@needs_torchao
def test_qdq_graph_of_a_loaded_artifact(int8: nn.Module, qdata: Splits, tmp_path: Path) -> None:
    restored = slimkit.load(slimkit.save(int8, tmp_path / "q.safetensors"))
    assert not (tmp_path / "q.onnx").exists()  # the torch backend writes no ONNX graph
    x = qdata.example_input(16)
    with torch.no_grad():
        assert torch.equal(to_qdq_graph(restored)(x), int8(x))


@needs_torchao
def test_residual_adds_keep_the_conv_output_unrounded_for_fusion() -> None:
    torch.manual_seed(0)
    model = slimkit.create_model("resnet20").eval()
    x = torch.randn(8, 1, 28, 28)
    q = quantize(model, Int8StaticConfig(), calib_data=[x], backend="torch")
    exact, fused = to_qdq_graph(q, fuse_residual=False), to_qdq_graph(q)

    def roundings(gm: nn.Module) -> int:
        return sum(type(m).__name__ == "_QDQ" for m in gm.modules())

    assert roundings(exact) == len([m for m in q.modules() if isinstance(m, ActQuant)])
    assert roundings(exact) - roundings(fused) == 9  # one per residual add
    with torch.no_grad():
        assert torch.equal(exact(x), q(x))
        assert sqnr(q(x), fused(x)) > 30.0


@needs_torchao
def test_only_static_int8_models_lower(trained: nn.Module) -> None:
    weight_only = quantize(trained, Int8WeightOnlyConfig(), backend="torch")
    with pytest.raises(UnsupportedOpError, match="int8-static and QAT"):
        to_qdq_graph(weight_only)


@needs_torchao
@pytest.mark.slow
def test_compiled_int8_kernels_agree_with_simulation(
    int8: nn.Module, test_inputs: torch.Tensor
) -> None:
    from torch._dynamo.utils import counters

    counters.clear()
    x = test_inputs[:64]
    runner = TorchInt8Module(int8, example=x)
    # Every conv and linear became a prepacked oneDNN int8 kernel.
    assert counters["inductor"]["qconv_weight_prepack_matcher_count"] == 2
    assert counters["inductor"]["qlinear_weight_prepack_matcher_count"] == 2
    assert counters["inductor"]["qconv_unary_matcher_count"] == 2  # conv + ReLU fused
    with torch.no_grad():
        compiled, simulated = runner(x), int8(x)
    assert float((compiled.argmax(1) == simulated.argmax(1)).float().mean()) >= 0.99
    assert torch.allclose(compiled, simulated, atol=0.05)
    assert not torch._inductor.config.freezing  # the global setting is restored
