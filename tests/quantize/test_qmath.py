from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.quantize import QuantWeight, sqnr
from slimkit.quantize._qmath import (
    affine_qparams,
    dequantize_int4_grouped,
    dequantize_weight,
    quantize_int4_grouped,
    quantize_weight,
    weight_scales,
)


@pytest.mark.parametrize(
    "layer",
    [nn.Conv2d(16, 32, 3), nn.Conv2d(3, 64, 1), nn.Linear(256, 128), nn.Linear(1568, 10)],
    ids=["conv3x3", "conv1x1", "linear", "linear-wide"],
)
def test_int8_per_channel_weights_sqnr_at_least_30db(layer: nn.Module) -> None:
    weight = layer.weight.detach()
    scales = weight_scales(weight)
    restored = dequantize_weight(quantize_weight(weight, scales), scales)
    assert sqnr(weight, restored) >= 30.0


def test_per_channel_beats_per_tensor_on_uneven_channels() -> None:
    weight = torch.randn(8, 64) * torch.logspace(-2, 0, 8).unsqueeze(1)
    per_channel = dequantize_weight(quantize_weight(weight, s := weight_scales(weight)), s)
    t = weight_scales(weight, per_channel=False)
    per_tensor = dequantize_weight(quantize_weight(weight, t), t)
    assert sqnr(weight, per_channel) > sqnr(weight, per_tensor) + 6


def test_quant_weight_layer_matches_float_layer_closely() -> None:
    conv = nn.Conv2d(4, 8, 3, padding=1, stride=2)
    x = torch.randn(2, 4, 9, 9)
    assert sqnr(conv(x), QuantWeight(conv)(x)) >= 30.0
    assert QuantWeight(conv).weight.dtype == torch.int8


def test_affine_qparams_hand_computed() -> None:
    scale, zero_point = affine_qparams(-1.0, 3.0)
    assert scale == pytest.approx(4.0 / 255)
    assert zero_point == round(1.0 / (4.0 / 255))  # 64: -1.0 maps to code 0
    assert affine_qparams(0.5, 2.0) == (pytest.approx(2.0 / 255), 0)  # range widened to 0


def test_int4_grouped_pack_round_trip() -> None:
    weight = torch.randn(6, 64)
    packed, scales = quantize_int4_grouped(weight, 16)
    assert packed.dtype == torch.uint8 and packed.shape == (6, 32) and scales.shape == (6, 4)
    restored = dequantize_int4_grouped(packed, scales)
    step = scales.repeat_interleave(16, dim=1)
    assert torch.all((restored - weight).abs() <= step / 2 + 1e-6)
    assert sqnr(weight, restored) > 15.0
