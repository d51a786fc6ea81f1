"""Latency tables: every cut the plan may make, priced in milliseconds on the deployment runtime.

Scaling a layer's measured time by the MACs it keeps assumes that every kernel runs at the same
MAC rate whatever its width. x86 int8 kernels do not: a narrow convolution runs fewer MACs per
second, and a width off the kernel's channel multiple costs what the next multiple costs. So
the plan measures instead. Each channel group pruned alone at each probed ratio is quantized,
exported and profiled layer by layer on the runtime that will run the result (cuts that touch
different layers share one graph); each layer the cut touched gets a measured point, its time at the kept input or output width as a fraction of
its unpruned time. A removed block costs nothing: its layers are gone.

A pruned model's predicted time is the sum of its layers' predicted times. A layer cut on both
sides (its input by one group, its output by another) keeps the product of the two fractions,
which is exact for its MACs; between measured widths the fraction is interpolated, below the
narrowest it falls in proportion to the channels. Profiles taken at different moments are put
on one scale by the layers a cut did not touch, so a machine that slowed down between two
profiles does not read as a slower layer.

No maintained library prices pruning cuts on an inference runtime's own kernels (NetAdapt's
per-layer lookup tables are the idea; its code is not kept), hence this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from torch import nn

#: A weighted layer's (input channels, output channels, groups).
Shape = tuple[int, int, int]
#: Which widths of a layer a cut changed: its input, its output, or both at once (depthwise).
SIDES = ("in", "out", "both")
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def layer_shapes(model: nn.Module) -> dict[str, Shape]:
    """(input channels, output channels, groups) of every convolution and linear layer."""
    shapes: dict[str, Shape] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            shapes[name] = (module.in_features, module.out_features, 1)
        elif isinstance(module, _WEIGHTED):
            conv = cast(nn.Conv2d, module)
            shapes[name] = (conv.in_channels, conv.out_channels, conv.groups)
    return shapes


def changed_side(before: Shape, after: Shape) -> str | None:
    """Which widths differ between two shapes of one layer (``None``: neither)."""
    ins, outs = before[0] != after[0], before[1] != after[1]
    if ins and outs:
        return "both"
    return "in" if ins else "out" if outs else None


@dataclass
class LayerCost:
    """One layer's unpruned time and its measured time fractions at narrower widths."""

    ms: float
    shape: Shape
    #: side (``in``, ``out``, ``both``) → kept channels on that side → fraction of ``ms``.
    points: dict[str, dict[int, float]] = field(default_factory=dict)

    def add(self, side: str, channels: int, fraction: float) -> None:
        self.points.setdefault(side, {})[channels] = fraction

    def _along(self, side: str, channels: int, full: int) -> float:
        """The fraction at ``channels`` on ``side``, never above that of a wider measurement:
        at the widths the plan rounds to, fewer channels do not take longer, so a measured
        rise is timing noise."""
        measured = {c: f for c, f in self.points.get(side, {}).items() if c < full}
        xs = sorted({**measured, full: 1.0})
        ys = list(np.minimum.accumulate([1.0, *(measured[x] for x in reversed(xs[:-1]))]))[::-1]
        if channels >= xs[0]:
            return float(np.interp(channels, xs, ys))
        return float(ys[0]) * channels / xs[0]  # narrower than any cut measured: in proportion

    def fraction(self, shape: Shape) -> float:
        """Predicted fraction of :attr:`ms` at ``shape``."""
        side = changed_side(self.shape, shape)
        if side is None:
            return 1.0
        cin, cout, _ = shape
        full_in, full_out, groups = self.shape
        if side == "both" and (groups > 1 or self.points.get("both")):
            # A depthwise layer (or one whose two sides are one group) narrows on both at once.
            return self._along("both", cout, full_out)
        return self._along("in", cin, full_in) * self._along("out", cout, full_out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ms": self.ms,
            "shape": list(self.shape),
            "points": {s: {str(c): f for c, f in p.items()} for s, p in self.points.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerCost:
        shape = tuple(int(v) for v in data["shape"])
        points = {s: {int(c): float(f) for c, f in p.items()} for s, p in data["points"].items()}
        return cls(float(data["ms"]), (shape[0], shape[1], shape[2]), points)


@dataclass
class LatencyTable:
    """Measured per-layer costs of one model on one runtime: predicts a pruned copy's time."""

    runtime: str
    layers: dict[str, LayerCost]

    @property
    def total_ms(self) -> float:
        return sum(cost.ms for cost in self.layers.values())

    def predicted_ms(self, model: nn.Module) -> float:
        """Milliseconds the timed layers of ``model`` (a pruned copy) are predicted to take."""
        shapes = layer_shapes(model)
        return sum(
            cost.ms * cost.fraction(shapes[name])
            for name, cost in self.layers.items()
            if name in shapes
        )

    def fraction(self, model: nn.Module) -> float:
        """Predicted fraction of the unpruned model's time that ``model`` keeps."""
        total = self.total_ms
        return self.predicted_ms(model) / total if total > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "layers": {k: v.to_dict() for k, v in self.layers.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        layers = {k: LayerCost.from_dict(v) for k, v in data["layers"].items()}
        return cls(str(data["runtime"]), layers)


def touched_layers(before: dict[str, Shape], after: dict[str, Shape]) -> frozenset[str]:
    """Layers whose shape differs between two copies of a model (or that one lacks)."""
    return frozenset(name for name, shape in before.items() if after.get(name) != shape)


def disjoint_batches(touched: Sequence[frozenset[str]]) -> list[list[int]]:
    """Indices of cuts grouped so that no two cuts of a batch touch the same layer (first fit).

    Layers are profiled one by one, so cuts that touch different layers can share one graph:
    each layer's time still reads off as if its cut were alone. An EfficientNet's blocks are
    independent groups; one graph per batch instead of one per cut. Cuts touching nothing are
    left out.
    """
    batches: list[tuple[list[int], set[str]]] = []
    for index, layers in enumerate(touched):
        if not layers:
            continue
        for members, used in batches:
            if used.isdisjoint(layers):
                members.append(index)
                used.update(layers)
                break
        else:
            batches.append(([index], set(layers)))
    return [members for members, _ in batches]


#: Per-layer milliseconds of a model's deployed graph: ``profile(model) -> {layer: ms}``.
Profiler = Callable[[nn.Module], dict[str, float]]


def measure_table(
    model: nn.Module,
    base_ms: dict[str, float],
    cuts: Iterable[nn.Module],
    profile: Profiler,
    runtime: str,
    on_cut: Callable[[int], None] | None = None,
) -> LatencyTable:
    """Price the layers of ``model`` from profiles of its pruned copies ``cuts``.

    Args:
        model: the unpruned model.
        base_ms: its per-layer milliseconds on ``runtime`` (``slimkit.runtime.layer_times``).
        cuts: pruned copies, each with one channel group narrowed, or several whose layers
            do not overlap (:func:`disjoint_batches`). Copies whose layer shapes were seen
            already, or that changed no layer, are not profiled again.
        profile: exports a copy for ``runtime`` and returns its per-layer milliseconds.
        runtime: the runtime's name, recorded in the table.
        on_cut: called with the number of profiles taken so far, after each one.
    """
    shapes = layer_shapes(model)
    table = LatencyTable(
        runtime,
        {k: LayerCost(ms, shapes[k]) for k, ms in base_ms.items() if k in shapes and ms > 0},
    )
    seen: set[tuple[tuple[str, Shape], ...]] = set()
    for cut in cuts:
        now = layer_shapes(cut)
        signature = tuple(sorted(now.items()))
        touched = {
            name: side
            for name in table.layers
            if name in now and (side := changed_side(shapes[name], now[name])) is not None
        }
        if not touched or signature in seen:
            continue
        seen.add(signature)
        _record(table, profile(cut), now, touched)
        if on_cut is not None:
            on_cut(len(seen))
    return table


def _record(
    table: LatencyTable, cut_ms: dict[str, float], now: dict[str, Shape], touched: dict[str, str]
) -> None:
    """Add one cut's measured fractions, on the scale of the layers it left alone."""
    untouched = [n for n in table.layers if n in cut_ms and n in now and n not in touched]
    before = sum(table.layers[n].ms for n in untouched)
    after = sum(cut_ms[n] for n in untouched)
    scale = after / before if before > 0 and after > 0 else 1.0
    for name, side in touched.items():
        if name not in cut_ms:
            continue
        cost = table.layers[name]
        channels = now[name][1] if side in ("out", "both") else now[name][0]
        cost.add(side, channels, cut_ms[name] / (cost.ms * scale))


def runtime_profiler(
    graph_of: Callable[[nn.Module], Path], runtime: str, batch: int, threads: int
) -> Profiler:
    """A :data:`Profiler` that exports each copy with ``graph_of`` and profiles it on ``runtime``."""
    from ..runtime import layer_times

    def profile(model: nn.Module) -> dict[str, float]:
        return layer_times(runtime, graph_of(model), batch=batch, threads=threads)

    return profile
