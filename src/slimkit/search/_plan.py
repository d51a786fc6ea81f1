"""Sensitivity curves of channel groups and the per-group ratios that hit a MACs fraction.

The sensitivity stage prunes one group at a time (no fine-tuning) and records the validation
accuracy drop. The plan gives every group the largest ratio whose measured (interpolated)
drop stays under a common threshold λ, so that insensitive groups lose more channels than
sensitive ones; λ is bisected until the pruned model keeps the wanted fraction of MACs.

Residual blocks that can be removed whole (depth pruning) have a curve of one point, the drop
when the block alone is replaced by the identity: at threshold λ a block goes when that drop
is at most λ, on the same scale as the channel groups.

When the plan counts parameters instead of MACs (the size goal), λ is a price instead: points
of drop per fraction of the weights saved. A group is cut as far as its drop stays within λ
times the weights that cut saves, so blocks and groups holding many weights go first.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Splits, make_loader
from ..data._splits import take
from ..graph import DependencyGraph, removable_blocks, remove_blocks
from ..importance import GROUP, unit_scores
from ..measure import count_macs, count_params, evaluate_accuracy
from ..prune import PerLayer, StructuredConfig
from ..prune._structured import prune_verified

MAX_RATIO = 0.9
# A tiny slope added to every curve: with it, λ = 0 prunes nothing and larger λ prunes more,
# even for groups whose measured drop is zero at every probed ratio.
TIE_SLOPE = 1e-3


@dataclass
class GroupCurve:
    """Validation drop (points) and MACs fraction when only this group is pruned."""

    key: str
    channels: int
    ratios: list[float]
    drops: list[float]
    macs_fraction: list[float]
    #: ``channels`` (a channel group) or ``block`` (a residual block removed whole, ratio 1).
    kind: str = "channels"
    #: Fraction of the parameters kept at each ratio (filled by the plan for a params cost).
    params_fraction: list[float] = field(default_factory=list)

    @property
    def top(self) -> float:
        """The largest ratio the plan may give: 1 (removal) for a block."""
        return 1.0 if self.kind == "block" else MAX_RATIO

    def drop_at(self, ratio: float) -> float:
        """Monotone, linearly interpolated (and extrapolated) drop at ``ratio``."""
        xs = [0.0, *self.ratios]
        ys = list(np.maximum.accumulate([0.0, *[max(d, 0.0) for d in self.drops]]))
        if ratio <= xs[-1]:
            value = float(np.interp(ratio, xs, ys))
        else:
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
            value = ys[-1] + max(slope, 0.0) * (ratio - xs[-1])
        return value + TIE_SLOPE * ratio

    def saved_at(self, ratio: float) -> float:
        """Fraction of the parameters this cut alone removes (linear between probes)."""
        if not self.params_fraction:
            raise ValueError(f"curve {self.key!r} has no parameter fractions")
        xs = [0.0, *self.ratios]
        ys = [0.0, *[1.0 - f for f in self.params_fraction]]
        if ratio <= xs[-1]:
            return float(np.interp(ratio, xs, ys))
        return ys[-1] * ratio / xs[-1]  # a channel cut removes weights in proportion

    def within(self, ratio: float, threshold: float, by_params: bool) -> bool:
        """Whether cutting ``ratio`` stays within λ: a drop, or a price per weight saved."""
        limit = threshold * self.saved_at(ratio) if by_params else threshold
        return self.drop_at(ratio) <= limit

    def ratio_for(
        self, threshold: float, cap: float = MAX_RATIO, *, by_params: bool = False
    ) -> float:
        """The largest ratio (on a 1% grid, at most ``cap``) within ``threshold``: a drop in
        points, or (``by_params``) points of drop per fraction of the weights saved."""
        if self.kind == "block":
            return 1.0 if self.within(1.0, threshold, by_params) else 0.0
        grid = np.linspace(0.0, MAX_RATIO, 91)
        ok = [r for r in grid if r <= cap + 1e-9 and self.within(float(r), threshold, by_params)]
        return float(ok[-1]) if ok else 0.0

    def top_price(self, by_params: bool) -> float:
        """The threshold at which this curve is cut as far as it goes."""
        worst = self.drop_at(self.top)
        return worst / max(self.saved_at(self.top), 1e-9) if by_params else worst

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "channels": self.channels,
            "ratios": self.ratios,
            "drops": self.drops,
            "macs_fraction": self.macs_fraction,
            "kind": self.kind,
            **({"params_fraction": self.params_fraction} if self.params_fraction else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupCurve:
        return cls(**data)


@dataclass
class Pruner:
    """A traced model with its unit scores, ready to prune with any per-group ratios."""

    model: nn.Module
    example: torch.Tensor
    graph: DependencyGraph
    scores: dict[int, float]
    importance: str
    round_to: int
    #: No channel group is planned below this many channels (see ``CompressConfig``).
    min_channels: int = 1
    base_macs: int = field(init=False)
    base_params: int = field(init=False)
    #: Residual blocks that can be removed whole (see ``slimkit.graph.removable_blocks``).
    blocks: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.base_macs = count_macs(self.model, self.example)
        self.base_params = count_params(self.model)
        self.blocks = removable_blocks(self.model, self.example)

    @classmethod
    def build(
        cls,
        model: nn.Module,
        splits: Splits,
        importance: str,
        round_to: int = 1,
        min_channels: int = 1,
    ) -> Pruner:
        model = copy.deepcopy(model).cpu().eval()
        example = splits.example_input(1)
        graph = DependencyGraph.build(model, example)
        criterion = GROUP.get(importance)()
        calib = None
        if criterion.needs_data:
            loader = make_loader(splits.train, batch_size=64, shuffle=True, seed=1234)
            calib = list(islice(iter(loader), 4))
        scores = unit_scores(graph, criterion(graph, model, calib))
        return cls(model, example, graph, scores, importance, round_to, min_channels)

    def caps(self, curves: list[GroupCurve]) -> dict[str, float]:
        """The largest ratio each channel group may get: one that keeps ``min_channels``."""
        return {
            c.key: max(0.0, min(MAX_RATIO, 1.0 - self.min_channels / c.channels))
            for c in curves
            if c.kind == "channels" and c.channels and self.min_channels > 1
        }

    def group_keys(self) -> list[tuple[str, int]]:
        """(override key, channels) of every prunable group."""
        return [(g.sources[0], g.channels) for g in self.graph.groups if g.prunable and g.sources]

    def config(self, ratios: dict[str, float]) -> StructuredConfig:
        """Per-group ratios as a pruning config; a block key with ratio 1 removes the block."""
        blocks = set(self.blocks)
        overrides = {k: min(r, MAX_RATIO) for k, r in ratios.items() if r > 0 and k not in blocks}
        removed = tuple(k for k in self.blocks if ratios.get(k, 0.0) >= 1.0)
        return StructuredConfig(
            ratio=0.0,
            scope=PerLayer(overrides=overrides),
            importance=self.importance,
            round_to=self.round_to,
            max_ratio=MAX_RATIO,
            remove_blocks=removed,
        )

    def prune(self, ratios: dict[str, float]) -> nn.Module:
        cfg = self.config(ratios)
        if isinstance(cfg.scope, PerLayer) and cfg.scope.overrides:
            model = prune_verified(self.graph, self.model, self.scores, cfg, 0.0).model
        else:
            model = copy.deepcopy(self.model)
        remove_blocks(model, cfg.remove_blocks)
        return model

    def widths(self, ratios: dict[str, float]) -> dict[str, int]:
        """Output width of every conv/linear layer after pruning by ``ratios``."""
        return layer_widths(self.prune(ratios))

    def macs_fraction(self, ratios: dict[str, float]) -> float:
        return count_macs(self.prune(ratios), self.example) / self.base_macs

    def fraction(self, ratios: dict[str, float], cost: str = "macs") -> float:
        """Fraction of the MACs or of the parameters (``cost``) kept after pruning."""
        if cost == "params":
            return count_params(self.prune(ratios)) / self.base_params
        return self.macs_fraction(ratios)


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output width of every conv/linear layer: what identifies a pruned structure."""
    return {
        name: int(getattr(m, "out_channels", getattr(m, "out_features", 0)))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.ConvTranspose2d | nn.Linear)
    }


def measure_curves(
    pruner: Pruner,
    splits: Splits,
    ratios: tuple[float, ...],
    images: int,
    on_probe: Callable[[int, int], None] | None = None,
) -> tuple[float, list[GroupCurve]]:
    """Prune each group alone at each ratio and measure the validation drop (no fine-tuning)."""
    subset = take(splits.val, images)
    base = evaluate_accuracy(pruner.model, subset)
    keys = pruner.group_keys()
    curves: list[GroupCurve] = []
    for index, (key, channels) in enumerate(keys):
        drops, fractions = [], []
        for ratio in ratios:
            pruned = pruner.prune({key: ratio})
            drops.append(base - evaluate_accuracy(pruned, subset))
            fractions.append(count_macs(pruned, pruner.example) / pruner.base_macs)
        curves.append(GroupCurve(key, channels, list(ratios), drops, fractions))
        if on_probe is not None:
            on_probe(index + 1, len(keys))
    return base, curves


def measure_block_curves(
    pruner: Pruner, splits: Splits, images: int, base: float | None = None
) -> list[GroupCurve]:
    """Remove each residual block alone and measure the validation drop (no fine-tuning).

    ``base`` is the original's accuracy on the same ``images`` validation images, when the
    sensitivity stage measured it already.
    """
    subset = take(splits.val, images)
    if base is None:
        base = evaluate_accuracy(pruner.model, subset)
    curves = []
    for key in pruner.blocks:
        pruned = pruner.prune({key: 1.0})
        drop = base - evaluate_accuracy(pruned, subset)
        fraction = count_macs(pruned, pruner.example) / pruner.base_macs
        params = [count_params(pruned) / pruner.base_params]
        curves.append(GroupCurve(key, 0, [1.0], [drop], [fraction], "block", params))
    return curves


def params_fractions(pruner: Pruner, curves: list[GroupCurve]) -> dict[str, list[float]]:
    """Fraction of the parameters kept at each probed ratio of each curve (no evaluation)."""
    return {
        c.key: c.params_fraction
        or [count_params(pruner.prune({c.key: r})) / pruner.base_params for r in c.ratios]
        for c in curves
    }


def allocate(
    curves: list[GroupCurve],
    threshold: float,
    caps: dict[str, float] | None = None,
    *,
    by_params: bool = False,
) -> dict[str, float]:
    """Per-group ratios at a common threshold λ, each at most its cap: a drop in points, or
    (``by_params``) a price in points per fraction of the weights saved."""
    caps = caps or {}
    return {
        c.key: c.ratio_for(threshold, caps.get(c.key, MAX_RATIO), by_params=by_params)
        for c in curves
    }


def plan_for_keep(
    pruner: Pruner,
    curves: list[GroupCurve],
    keep: float,
    cost: str = "macs",
    *,
    iterations: int = 14,
) -> tuple[dict[str, float], float]:
    """Bisect λ until the pruned model keeps about ``keep`` of its MACs or parameters
    (``cost``), at or below it.

    Returns the per-group ratios and the fraction they achieve. When even the largest
    ratios keep more than ``keep``, those ratios are returned with their (higher) fraction.
    """
    if keep >= 1.0 or not curves:
        return {}, 1.0
    by_params = cost == "params"
    high = max(c.top_price(by_params) for c in curves) + 1.0
    caps = pruner.caps(curves)
    best = allocate(curves, high, caps, by_params=by_params)
    best_fraction = pruner.fraction(best, cost)
    if best_fraction > keep:
        return best, best_fraction
    low = 0.0
    for _ in range(iterations):
        mid = (low + high) / 2
        ratios = allocate(curves, mid, caps, by_params=by_params)
        fraction = pruner.fraction(ratios, cost)
        if fraction > keep:
            low = mid
        else:
            high, best, best_fraction = mid, ratios, fraction
            if keep - fraction < 0.01:
                break
    return best, best_fraction
