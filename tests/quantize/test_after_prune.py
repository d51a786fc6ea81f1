"""int8 static quantization of pruned models: the compression pipeline's last step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit
from slimkit import Splits, StructuredConfig, UnstructuredConfig
from slimkit.quantize import (
    FLOAT_COMPUTE,
    Int8StaticConfig,
    OrtModule,
    QuantWeight,
    onnx_path,
    optimized_op_types,
    quantize,
)
from slimkit.testing import fashion_mnist_slice, seeded_model

pytest.importorskip("onnxruntime")


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


def _round_trip(q: nn.Module, path: Path, x: torch.Tensor) -> nn.Module:
    restored = slimkit.load(slimkit.save(q, path))
    with torch.no_grad():
        assert torch.equal(restored(x), q(x))
    return restored


def _check_deployed(path: Path, q: nn.Module, x: torch.Tensor) -> None:
    ops = optimized_op_types(onnx_path(path))
    assert ops["QLinearConv"] == 2 and not FLOAT_COMPUTE & set(ops)
    with torch.no_grad():
        assert _agreement(OrtModule(onnx_path(path))(x), q(x)) >= 0.99


def test_int8_after_unstructured_pruning_keeps_the_zeros(
    trained: nn.Module, qdata: Splits, test_inputs: torch.Tensor, tmp_path: Path
) -> None:
    sparse = slimkit.prune(trained, UnstructuredConfig(sparsity=0.6), progress=False)
    q = quantize(sparse, Int8StaticConfig(calib_batches=2), calib_data=qdata)
    for name, layer in q.named_modules():
        if isinstance(layer, QuantWeight):
            pruned = sparse.get_submodule(name).weight == 0
            assert torch.all(layer.weight[pruned] == 0), name  # int8 zero is exactly zero
    with torch.no_grad():
        assert _agreement(q(test_inputs), sparse(test_inputs)) >= 0.95
    _round_trip(q, tmp_path / "q.safetensors", test_inputs)
    _check_deployed(tmp_path / "q.safetensors", q, test_inputs)


def test_int8_after_structured_pruning_round_trips(
    trained: nn.Module, qdata: Splits, test_inputs: torch.Tensor, tmp_path: Path
) -> None:
    slim = slimkit.prune(trained, StructuredConfig(ratio=0.5), example_inputs=test_inputs[:1])
    assert slim.conv2.out_channels < trained.conv2.out_channels
    q = quantize(slim, Int8StaticConfig(calib_batches=2), calib_data=qdata)
    assert q.float_model.get_submodule("conv2").weight.shape[0] == slim.conv2.out_channels
    restored = _round_trip(q, tmp_path / "q.safetensors", test_inputs)
    assert restored.slimkit_spec["structure"] == slim.slimkit_structure  # type: ignore[union-attr]
    _check_deployed(tmp_path / "q.safetensors", q, test_inputs)
    # A loaded pruned int8 model saves again (the structure is not lost on the way).
    again = slimkit.load(slimkit.save(restored, tmp_path / "again.safetensors"))
    with torch.no_grad():
        assert torch.equal(again(test_inputs[:8]), q(test_inputs[:8]))


def test_int8_after_structured_pruning_of_resnet20(tmp_path: Path) -> None:
    splits = fashion_mnist_slice(limit_train=512, limit_eval=128)
    model = seeded_model("resnet20").eval()
    x = splits.example_input(32)
    slim = slimkit.prune(model, StructuredConfig(ratio=0.5, round_to=4), example_inputs=x[:1])
    q = quantize(slim, Int8StaticConfig(calib_batches=2), calib_data=splits)
    restored = _round_trip(q, tmp_path / "r.safetensors", x)
    # Residual adds after pruning still run as QLinearAdd (coupled channels pruned together).
    ops = optimized_op_types(onnx_path(tmp_path / "r.safetensors"))
    assert ops["QLinearAdd"] == 9 and not FLOAT_COMPUTE & set(ops)
    with torch.no_grad():
        assert torch.allclose(
            OrtModule(onnx_path(tmp_path / "r.safetensors"))(x), restored(x), atol=0.1
        )
