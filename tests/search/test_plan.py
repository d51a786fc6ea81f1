from __future__ import annotations

import pytest
from torch import nn

from slimkit import Splits
from slimkit.search import GroupCurve, Pruner, measure_curves, plan_for_macs
from slimkit.search._plan import MAX_RATIO, TIE_SLOPE, allocate


def curve(key: str, drops: list[float]) -> GroupCurve:
    return GroupCurve(key, 16, [0.3, 0.6], drops, [0.8, 0.6])


def test_drop_is_monotone_interpolated_and_extrapolated() -> None:
    c = curve("a", [2.0, 1.0])  # noisy: the measured drop fell at the larger ratio
    assert c.drop_at(0.15) == pytest.approx(1.0 + TIE_SLOPE * 0.15)
    assert c.drop_at(0.6) == pytest.approx(2.0 + TIE_SLOPE * 0.6)  # monotone envelope
    steep = curve("b", [1.0, 4.0])
    assert steep.drop_at(0.9) == pytest.approx(4.0 + 3.0 + TIE_SLOPE * 0.9)  # slope 10/pt


def test_allocation_prunes_insensitive_groups_more() -> None:
    curves = [curve("robust", [0.0, 0.2]), curve("fragile", [3.0, 9.0])]
    ratios = allocate(curves, threshold=1.0)
    assert ratios["robust"] == pytest.approx(MAX_RATIO)
    assert ratios["fragile"] == pytest.approx(0.09)  # 0.1 costs 1.0 + the tie slope
    assert allocate(curves, 0.0) == {"robust": 0.0, "fragile": 0.0}


def test_measured_curves_and_macs_plan(trained: nn.Module, small_splits: Splits) -> None:
    pruner = Pruner.build(trained, small_splits, "l2")
    keys = [k for k, _ in pruner.group_keys()]
    assert keys  # seed-cnn-slim has prunable convolutions and a hidden linear layer
    base, curves = measure_curves(pruner, small_splits, (0.3, 0.6), images=256)
    assert 10.0 < base <= 100.0
    assert [c.key for c in curves] == keys
    for c in curves:
        assert c.macs_fraction[0] > c.macs_fraction[1] and c.macs_fraction[0] < 1.0
    for keep in (0.7, 0.4):
        ratios, fraction = plan_for_macs(pruner, curves, keep)
        assert fraction <= keep
        assert fraction == pytest.approx(pruner.macs_fraction(ratios))
        assert fraction > keep - 0.1  # close to the target, not far below it
    assert plan_for_macs(pruner, curves, 1.0) == ({}, 1.0)
