from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from slimkit import Splits
from slimkit.quantize import (
    Int8StaticConfig,
    Int8WeightOnlyConfig,
    LayerSensitivity,
    QATConfig,
    quantizable_layers,
    sensitivity,
)
from slimkit.quantize._ort_report import quantized_modules
from slimkit.quantize._sensitivity import _single_layer_graphs


@pytest.fixture(scope="module")
def fragile(trained: nn.Module) -> nn.Module:
    """The same function, but hidden unit 0 is 1000x larger (fc2 reads it 1000x smaller).

    ReLU is positively homogeneous, so the float model is unchanged; a per-tensor uint8 range
    over the hidden activations now rounds every other unit to zero.
    """
    model = copy.deepcopy(trained)
    with torch.no_grad():
        model.fc1.weight[0] *= 1000.0
        model.fc1.bias[0] *= 1000.0
        model.fc2.weight[:, 0] /= 1000.0
    return model


def test_layers_around_an_outlier_tensor_rank_first(
    fragile: nn.Module, trained: nn.Module, qdata: Splits
) -> None:
    x = qdata.example_input(64)
    with torch.no_grad():
        torch.testing.assert_close(fragile(x), trained(x), rtol=1e-3, atol=1e-3)
    cfg = Int8StaticConfig(calib_batches=2)
    ranked = sensitivity(fragile, cfg, qdata, batches=2, batch_size=128)
    assert {r.layer for r in ranked[:2]} == {"fc1", "fc2"}  # the writer and the reader
    assert min(r.accuracy_drop for r in ranked[:2]) > 20.0
    assert max(r.accuracy_drop for r in ranked[2:]) < 3.0
    drops = [r.accuracy_drop for r in ranked]
    assert drops == sorted(drops, reverse=True)


def test_records_are_plain_pairs(trained: nn.Module, qdata: Splits) -> None:
    cfg = Int8StaticConfig(exclude=("fc2",), calib_batches=1)
    ranked = sensitivity(trained, cfg, qdata, batches=1, batch_size=64)
    assert all(isinstance(r, LayerSensitivity) for r in ranked)
    name, drop = ranked[0]
    assert isinstance(name, str) and isinstance(drop, float)
    assert ranked[0].to_dict() == {"layer": name, "accuracy_drop": drop}
    assert "fc2" not in {r.layer for r in ranked}  # excluded layers are not ranked


def test_only_the_probed_layer_is_quantized(trained: nn.Module, qdata: Splits) -> None:
    graphs = _single_layer_graphs(trained, Int8StaticConfig(), [qdata.example_input(32)])
    graph = graphs.graph("conv2")
    assert quantized_modules(graph) == ["conv2"]
    quantizers = [n for n in graph.graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantizers) == 2  # conv2's input and its output
    assert quantizable_layers(trained) == ["conv1", "conv2", "fc1", "fc2"]


def test_qat_config_is_ranked_by_its_static_part(trained: nn.Module, qdata: Splits) -> None:
    ranked = sensitivity(trained, QATConfig(calib_batches=1), qdata, batches=1, batch_size=32)
    assert len(ranked) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cfg": Int8WeightOnlyConfig()}, TypeError, "Int8StaticConfig"),
        ({"batches": 0}, ValueError, "batches"),
        ({"cfg": Int8StaticConfig(exclude=("nope",))}, ValueError, "nope"),
    ],
)
def test_bad_arguments(
    trained: nn.Module, qdata: Splits, kwargs: dict, error: type, match: str
) -> None:
    args = {"cfg": Int8StaticConfig(), "batches": 1, **kwargs}
    with pytest.raises(error, match=match):
        sensitivity(trained, args.pop("cfg"), qdata, **args)
