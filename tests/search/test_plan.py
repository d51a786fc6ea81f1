from __future__ import annotations

import pytest
from torch import nn

from slimkit import Splits
from slimkit.search import GroupCurve, Pruner, measure_curves, plan_for_keep
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
        ratios, fraction = plan_for_keep(pruner, curves, keep)
        assert fraction <= keep
        assert fraction == pytest.approx(pruner.macs_fraction(ratios))
        assert fraction > keep - 0.1  # close to the target, not far below it
    assert plan_for_keep(pruner, curves, 1.0) == ({}, 1.0)


def test_block_curve_removes_whole_or_nothing() -> None:
    block = GroupCurve("layer1.1", 0, [1.0], [0.4], [0.9], kind="block")
    assert block.ratio_for(0.39) == 0.0
    assert block.ratio_for(0.4 + TIE_SLOPE) == 1.0
    assert GroupCurve.from_dict(block.to_dict()) == block
    # A block that gained accuracy when removed goes at any threshold above the tie slope.
    assert GroupCurve("b", 0, [1.0], [-0.3], [0.9], kind="block").ratio_for(0.01) == 1.0


def test_plan_with_residual_blocks(small_splits: Splits) -> None:
    from slimkit.search._plan import measure_block_curves
    from slimkit.testing import seeded_model

    pruner = Pruner.build(seeded_model("resnet20"), small_splits, "l2")
    assert pruner.blocks == [
        "layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"
    ]  # fmt: skip
    blocks = measure_block_curves(pruner, small_splits, images=128)
    assert [c.key for c in blocks] == pruner.blocks
    assert all(c.kind == "block" and 0.8 < c.macs_fraction[0] < 1.0 for c in blocks)
    # Channels that cost more than any block: the plan reaches 75% of the MACs by removal.
    channels = [
        GroupCurve(key, n, [0.3, 0.6], [5.0, 10.0], [0.9, 0.8]) for key, n in pruner.group_keys()
    ]
    cheap = [
        GroupCurve(c.key, 0, [1.0], [0.1 * i], c.macs_fraction, "block")
        for i, c in enumerate(blocks)
    ]
    ratios, fraction = plan_for_keep(pruner, channels + cheap, 0.75)
    removed = pruner.config(ratios).remove_blocks
    assert removed and list(removed) == pruner.blocks[: len(removed)]  # least sensitive first
    assert max(r for k, r in ratios.items() if k not in pruner.blocks) < 0.1
    assert fraction <= 0.75 and fraction == pytest.approx(pruner.macs_fraction(ratios))
    pruned = pruner.prune(ratios)
    assert all(isinstance(pruned.get_submodule(k), nn.Identity) for k in removed)


def test_params_cost_removes_the_blocks_holding_most_weights_first(small_splits: Splits) -> None:
    from slimkit.search._plan import cost_fractions
    from slimkit.testing import seeded_model

    pruner = Pruner.build(seeded_model("resnet20"), small_splits, "l2")
    # Every block and channel group costs the same predicted drop: by MACs the blocks tie
    # (each stage's blocks run the same MACs), by weights the wide layer3 blocks go first.
    channels = [
        GroupCurve(k, n, [0.3, 0.6], [3.0, 6.0], [0.9, 0.8]) for k, n in pruner.group_keys()
    ]
    blocks = [GroupCurve(k, 0, [1.0], [0.5], [0.9], "block") for k in pruner.blocks]
    curves = channels + blocks
    fractions = cost_fractions(pruner, curves, "params")
    for c in curves:
        c.params_fraction = fractions[c.key]
    layer3 = {c.key: 1 - c.params_fraction[0] for c in blocks if c.key.startswith("layer3")}
    layer1 = {c.key: 1 - c.params_fraction[0] for c in blocks if c.key.startswith("layer1")}
    assert min(layer3.values()) > 10 * max(layer1.values())  # 64x64 vs 16x16 convolutions
    ratios, fraction = plan_for_keep(pruner, curves, 0.8, "params")
    assert fraction <= 0.8 and fraction == pytest.approx(pruner.fraction(ratios, "params"))
    assert list(pruner.config(ratios).remove_blocks) == ["layer3.1", "layer3.2"]
    assert max(r for k, r in ratios.items() if k not in pruner.blocks) < 0.1
    assert pruner.macs_fraction(ratios) > 0.75  # most weights, few MACs
    # The same curves planned by MACs remove layer1's blocks as readily as layer3's.
    by_macs, _ = plan_for_keep(pruner, curves, 0.8)
    assert any(b.startswith("layer1") for b in pruner.config(by_macs).remove_blocks)
    with pytest.raises(ValueError, match="no parameter fractions"):
        GroupCurve("x", 4, [0.5], [1.0], [0.5]).saved_at(0.5)


def test_latency_cost_removes_the_blocks_slowest_per_mac_first(small_splits: Splits) -> None:
    from slimkit.measure import layer_macs
    from slimkit.search._plan import cost_fractions
    from slimkit.testing import seeded_model

    pruner = Pruner.build(seeded_model("resnet20"), small_splits, "l2")
    with pytest.raises(ValueError, match="per-layer times"):
        pruner.fraction({}, "latency")
    # layer1's convolutions run 4x slower per MAC than the rest (as narrow int8 convs do).
    macs = layer_macs(pruner.model, pruner.example)
    pruner.layer_ms = {k: m * (4e-6 if k.startswith("layer1") else 1e-6) for k, m in macs.items()}
    assert pruner.fraction({}, "latency") == pytest.approx(1.0)
    total = sum(pruner.layer_ms.values())
    block = ("layer1.1.conv1", "layer1.1.conv2")
    expected = 1 - sum(pruner.layer_ms[k] for k in block) / total
    assert pruner.fraction({"layer1.1": 1.0}, "latency") == pytest.approx(expected)
    channels = [
        GroupCurve(k, n, [0.3, 0.6], [3.0, 6.0], [0.9, 0.8]) for k, n in pruner.group_keys()
    ]
    blocks = [GroupCurve(k, 0, [1.0], [0.5], [0.9], "block") for k in pruner.blocks]
    curves = channels + blocks
    for c in curves:
        c.latency_fraction = cost_fractions(pruner, curves, "latency")[c.key]
    ratios, fraction = plan_for_keep(pruner, curves, 0.75, "latency")
    assert fraction <= 0.75 and fraction == pytest.approx(pruner.fraction(ratios, "latency"))
    assert list(pruner.config(ratios).remove_blocks) == ["layer1.0", "layer1.1", "layer1.2"]
    assert pruner.macs_fraction(ratios) > fraction + 0.2  # slow MACs went first
    with pytest.raises(ValueError, match="no latency fractions"):
        GroupCurve("x", 4, [0.5], [1.0], [0.5]).saved_at(0.5, "latency")


def test_channel_floor_caps_each_group(trained: nn.Module, small_splits: Splits) -> None:
    pruner = Pruner.build(trained, small_splits, "l2", min_channels=16)
    channels = dict(pruner.group_keys())
    curves = [GroupCurve(k, n, [0.3, 0.6], [0.0, 0.0], [0.9, 0.8]) for k, n in channels.items()]
    caps = pruner.caps(curves)
    assert caps == {
        k: pytest.approx(max(0.0, min(MAX_RATIO, 1 - 16 / n))) for k, n in channels.items()
    }
    ratios, _ = plan_for_keep(pruner, curves, 0.1)  # as deep as the caps allow
    widths = pruner.widths(ratios)
    for key, n in channels.items():
        assert widths[key] >= min(16, n), (key, widths[key])
    free = Pruner.build(trained, small_splits, "l2")
    deep = free.widths(plan_for_keep(free, curves, 0.1)[0])
    assert min(deep[key] for key in channels) < 16  # without the floor the plan goes lower


class _SharePruner:
    """A stand-in pruner: each group holds a share of the MACs, removed in proportion."""

    def __init__(self, shares: dict[str, float]) -> None:
        self.shares = shares

    def caps(self, curves: list[GroupCurve]) -> dict[str, float]:
        return {c.key: MAX_RATIO for c in curves}

    def fraction(self, ratios: dict[str, float], cost: str = "macs") -> float:
        return 1.0 - sum(self.shares[k] * r for k, r in ratios.items())


def test_plan_follows_the_target_when_many_cuts_measure_free() -> None:
    # mobilenet_v3_small on Fashion-MNIST: most groups lose nothing on the probe images. A
    # bisection over a range of λ could not resolve their tie slope and cut them all at once,
    # the same plan for every target from 30% to 99% of the MACs.
    free = [curve(f"free{i}", [0.0, 0.0]) for i in range(10)]
    costly = curve("costly", [0.5, 2.0])
    shares = {**{c.key: 0.08 for c in free}, "costly": 0.15}
    pruner = _SharePruner(shares)
    fractions = []
    for keep in (0.95, 0.8, 0.5, 0.3):
        ratios, fraction = plan_for_keep(pruner, [*free, costly], keep)  # type: ignore[arg-type]
        assert keep - 0.02 < fraction <= keep
        assert fraction == pytest.approx(pruner.fraction(ratios))
        fractions.append(fraction)
    # The free groups go first; the costly one only when they are spent.
    assert plan_for_keep(pruner, [*free, costly], 0.5)[0]["costly"] == 0.0  # type: ignore[arg-type]
    assert plan_for_keep(pruner, [*free, costly], 0.2)[0]["costly"] > 0.0  # type: ignore[arg-type]
