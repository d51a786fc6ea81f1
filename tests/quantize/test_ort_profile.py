from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from slimkit import Splits
from slimkit.quantize import Int8StaticConfig, export_onnx, quantize
from slimkit.quantize._ort_profile import kernel_times, layer_nodes, layer_times, source_node

pytest.importorskip("onnxruntime")


def _weighted(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}


def test_optimised_kernels_map_to_their_source_node() -> None:
    nodes = {"layer1_0_conv1_1", "layer1_0_conv1_12", "fc_30"}
    assert source_node("layer1_0_conv1_12_token_3", nodes) == "layer1_0_conv1_12"
    assert source_node("layer1_0_conv1_1_token_7", nodes) == "layer1_0_conv1_1"
    assert source_node("fc_30", nodes) == "fc_30"
    assert source_node("relu_4_nchwc", nodes) is None


def test_int8_layer_times_name_every_weighted_layer(
    trained: nn.Module, qdata: Splits, tmp_path: Path
) -> None:
    q = quantize(trained, Int8StaticConfig(calib_batches=2), calib_data=qdata)
    path = export_onnx(q, tmp_path / "q.onnx", qdata.example_input(1))
    assert set(layer_nodes(path).values()) == _weighted(trained)
    times = layer_times(path, batch=8, runs=3)
    assert set(times) == _weighted(trained)  # every QLinearConv / QGemm found its module
    assert all(ms > 0 for ms in times.values())
    kernels = kernel_times(path, batch=8, runs=3)
    nodes = layer_nodes(path)
    unattributed = {k["op"] for k in kernels if source_node(k["node"], nodes) is None}
    assert "QuantizeLinear" in unattributed  # quantize/pool kernels are no layer's time
    assert {k["op"] for k in kernels} >= {"QLinearConv"}
