from __future__ import annotations

import pytest
import torch
from torch import nn

import slimkit
from slimkit import DataError, Splits, TrainConfig
from slimkit.quantize import (
    Int8StaticConfig,
    QATConfig,
    quantization_report,
    quantize,
)


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse"])
def test_static_int8_keeps_predictions(
    trained: nn.Module, qdata: Splits, test_inputs: torch.Tensor, observer: str
) -> None:
    q = quantize(trained, Int8StaticConfig(observer=observer, calib_batches=4), calib_data=qdata)
    with torch.no_grad():
        assert _agreement(q(test_inputs), trained(test_inputs)) >= 0.97
    layers = ["conv1", "conv2", "fc1", "fc2"]
    assert quantization_report(q)["quantized"] == layers
    state = q.state_dict()
    assert all(state[f"{name}.weight"].dtype == torch.int8 for name in layers)
    ranges = q.slimkit_quantization["ranges"]
    assert ranges and all(lo <= 0.0 <= hi and hi > lo for lo, hi in ranges.values())


def test_input_model_is_untouched(trained: nn.Module, qdata: Splits) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    quantize(trained, Int8StaticConfig(calib_batches=1), calib_data=qdata)
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())


def test_excluded_layers_stay_float_and_are_reported(trained: nn.Module, qdata: Splits) -> None:
    q = quantize(trained, Int8StaticConfig(exclude=("fc2",), calib_batches=1), calib_data=qdata)
    report = quantization_report(q)
    assert report["quantized"] == ["conv1", "conv2", "fc1"]
    assert q.state_dict()["fc2.weight"].dtype == torch.float32
    assert {"node": "fc2", "op": "fc2 (Linear)", "reason": "excluded by the config"} in report[
        "float_ops"
    ]


def test_unknown_exclusion_is_a_value_error(trained: nn.Module, qdata: Splits) -> None:
    with pytest.raises(ValueError, match="fc9"):
        quantize(trained, Int8StaticConfig(exclude=("fc9",)), calib_data=qdata)


class _WithExp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.exp(self.conv(x)).flatten(1))


def test_op_without_int8_kernel_is_left_float_and_reported() -> None:
    model = _WithExp().eval()
    x = torch.randn(16, 1, 28, 28)
    q = quantize(model, Int8StaticConfig(), calib_data=[x])
    ops = [entry["op"] for entry in quantization_report(q)["float_ops"]]
    assert ops == ["exp (Exp)"]  # ONNX Runtime has no int8 exponential
    assert quantization_report(q)["quantized"] == ["conv", "fc"]
    with torch.no_grad():
        assert _agreement(q(x), model(x)) >= 0.9


@pytest.mark.parametrize(
    ("calib", "message"),
    [
        ([], "empty"),
        ([torch.randn(4, 3, 28, 28)], "3 channels"),
        ([torch.randn(4, 1, 20, 20)], "does not fit"),
        (["not a tensor"], "tensors"),
        (None, "calibration data"),
    ],
)
def test_bad_calibration_data_is_a_data_error(
    trained: nn.Module, calib: object, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        quantize(trained, Int8StaticConfig(), calib_data=calib)


def test_qat_fine_tunes_and_freezes_to_int8(trained: nn.Module, qdata: Splits) -> None:
    small = Splits(
        qdata.name,
        torch.utils.data.Subset(qdata.train, range(1024)),
        qdata.val,
        qdata.test,
        qdata.num_classes,
        qdata.input_shape,
    )
    cfg = QATConfig(calib_batches=2, train=TrainConfig(epochs=1, lr=1e-4))
    q = quantize(trained, cfg, data=small, progress=False)
    assert quantization_report(q)["quantized"] == ["conv1", "conv2", "fc1", "fc2"]
    assert q.state_dict()["conv1.weight"].dtype == torch.int8
    baseline = slimkit.evaluate_accuracy(trained, qdata.test)
    assert slimkit.evaluate_accuracy(q, qdata.test) >= baseline - 3.0


def test_unknown_config_type_is_a_type_error(trained: nn.Module) -> None:
    with pytest.raises(TypeError, match="Int8StaticConfig"):
        quantize(trained, object())
