"""Latency tables: per-layer prices read off profiled cuts, and the times they predict."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from torch import nn

from slimkit.search._latency import (
    LatencyTable,
    LayerCost,
    changed_side,
    disjoint_batches,
    layer_shapes,
    measure_table,
    touched_layers,
)


def net(c1: int = 8, c2: int = 16, *, depthwise: bool = True) -> nn.Module:
    """conv ``a`` 1→c1, conv ``b`` c1→c2, depthwise ``dw`` over c2 (an identity when removed),
    linear ``fc`` c2→10."""
    dw = nn.Conv2d(c2, c2, 3, groups=c2) if depthwise else nn.Identity()
    layers = {"a": nn.Conv2d(1, c1, 3), "b": nn.Conv2d(c1, c2, 3), "dw": dw}
    return nn.Sequential(OrderedDict({**layers, "flat": nn.Flatten(), "fc": nn.Linear(c2, 10)}))


def timing(model: nn.Module, slower: float = 1.0) -> dict[str, float]:
    """A stand-in profiler: a layer's time is 0.01 ms per (in × out / groups), plus a
    fixed 0.5 ms; ``slower`` scales every layer, as a busier machine would."""
    return {
        name: slower * (0.5 + 0.01 * cin * cout / groups)
        for name, (cin, cout, groups) in layer_shapes(model).items()
    }


def test_layer_shapes_and_changed_sides() -> None:
    assert layer_shapes(net()) == {
        "a": (1, 8, 1),
        "b": (8, 16, 1),
        "dw": (16, 16, 16),
        "fc": (16, 10, 1),
    }
    assert changed_side((8, 16, 1), (8, 16, 1)) is None
    assert changed_side((8, 16, 1), (4, 16, 1)) == "in"
    assert changed_side((8, 16, 1), (8, 12, 1)) == "out"
    assert changed_side((16, 16, 16), (8, 8, 8)) == "both"


def _table(slower: tuple[float, ...] = (1.0,)) -> tuple[LatencyTable, list[nn.Module]]:
    base = net()
    cuts = [net(c1=4), net(c1=8, c2=8), net(c1=4)]  # the third repeats the first
    speeds = iter(slower * len(cuts))
    profiled: list[nn.Module] = []

    def profile(model: nn.Module) -> dict[str, float]:
        profiled.append(model)
        return timing(model, next(speeds))

    table = measure_table(base, timing(base), cuts, profile, "stand-in")
    return table, profiled


def test_single_cuts_are_predicted_as_measured() -> None:
    table, profiled = _table()
    assert len(profiled) == 2  # one profile per distinct set of shapes
    for cut in (net(c1=4), net(c1=8, c2=8)):
        assert table.predicted_ms(cut) == pytest.approx(sum(timing(cut).values()))
    assert table.fraction(net()) == 1.0
    # conv "b" narrowed on its input by one cut: its measured time at 4 input channels.
    base = timing(net())
    assert table.layers["b"].points["in"] == {4: pytest.approx(timing(net(c1=4))["b"] / base["b"])}
    assert table.layers["dw"].points["both"] == {
        8: pytest.approx(timing(net(c2=8))["dw"] / base["dw"])
    }


def test_a_layer_cut_on_both_sides_keeps_the_product() -> None:
    table, _ = _table()
    both = net(c1=4, c2=8)  # conv "b" is 4 → 8: input fraction × output fraction
    base = timing(net())["b"]
    f_in, f_out = timing(net(c1=4))["b"] / base, timing(net(c2=8))["b"] / base
    assert table.layers["b"].fraction(layer_shapes(both)["b"]) == pytest.approx(f_in * f_out)


def test_a_slower_machine_does_not_read_as_slower_layers() -> None:
    steady, _ = _table()
    busy, _ = _table(slower=(1.3,))
    for name, cost in steady.layers.items():
        for side, points in cost.points.items():
            assert busy.layers[name].points[side] == pytest.approx(points)


def test_a_removed_layer_saves_its_time_and_narrower_widths_fall_in_proportion() -> None:
    table, _ = _table()
    base_ms = timing(net())
    without = net(depthwise=False)
    assert table.predicted_ms(without) == pytest.approx(sum(base_ms.values()) - base_ms["dw"])
    # Narrower than any measurement: proportional to the channels below the narrowest point.
    narrowest = table.layers["dw"].points["both"][8]
    assert table.layers["dw"].fraction((4, 4, 4)) == pytest.approx(narrowest / 2)


def test_fewer_channels_never_predict_more_time() -> None:
    cost = LayerCost(2.0, (16, 32, 1), {"out": {24: 0.5, 16: 0.7, 8: 0.8}})
    assert [cost.fraction((16, c, 1)) for c in (32, 28, 24, 16, 8, 4)] == pytest.approx(
        [1.0, 0.75, 0.5, 0.5, 0.5, 0.25]
    )
    assert LayerCost.from_dict(cost.to_dict()) == cost


def test_table_round_trips_through_json_ready_dicts() -> None:
    table, _ = _table()
    again = LatencyTable.from_dict(table.to_dict())
    assert again == table
    assert again.fraction(net(c1=4)) == pytest.approx(table.fraction(net(c1=4)))


def test_cuts_on_different_layers_share_a_graph() -> None:
    base = layer_shapes(net())
    assert touched_layers(base, layer_shapes(net(c1=4))) == {"a", "b"}
    assert touched_layers(base, layer_shapes(net(depthwise=False))) == {"dw"}
    touched = [
        frozenset({"a", "b"}),
        frozenset({"b", "dw", "fc"}),  # shares b with the first
        frozenset(),  # a ratio that rounded to no cut: not profiled
        frozenset({"dw", "fc"}),  # fits beside the first, not beside the second
        frozenset({"x"}),
    ]
    assert disjoint_batches(touched) == [[0, 3, 4], [1]]
