"""Sensitivity curves of channel groups and the per-group ratios that hit a MACs fraction.

The sensitivity stage prunes one group at a time (no fine-tuning) and records the validation
accuracy drop. The plan gives every group the largest ratio whose measured (interpolated)
drop stays under a common threshold λ, so that insensitive groups lose more channels than
sensitive ones; λ is bisected, over the prices at which some group's ratio grows, until the
pruned model keeps the wanted fraction of MACs.

Residual blocks that can be removed whole (depth pruning) have a curve of one point, the drop
when the block alone is replaced by the identity: at threshold λ a block goes when that drop
is at most λ, on the same scale as the channel groups.

When the plan counts parameters instead of MACs (the size goal), λ is a price instead: points
of drop per fraction of the weights saved. A group is cut as far as its drop stays within λ
times the weights that cut saves, so blocks and groups holding many weights go first.

The latency cost prices the same way, per fraction of the predicted latency saved, from a
:class:`~slimkit.search._latency.LatencyTable` measured on the deployment runtime: every cut's
layers profiled at the widths it leaves (or, without a table, each layer's time scaled by the
MACs it keeps). A block whose convolutions run slowly per MAC (few channels, large feature maps
on an int8 CPU kernel) is then worth more than a block of the same MACs that runs fast.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn

from .._bisect import bisect
from ..data import Splits, make_loader
from ..data._splits import take
from ..graph import DependencyGraph, removable_blocks, remove_blocks
from ..importance import GroupImportance, group_criterion, unit_scores
from ..measure import Metric, count_macs, count_params, layer_macs
from ..prune import PerLayer, StructuredConfig
from ..prune._select import prune_verified
from ._latency import LatencyTable

MAX_RATIO = 0.9
# A tiny slope added to every curve: with it, λ = 0 prunes nothing and larger λ prunes more,
# even for groups whose measured drop is zero at every probed ratio.
TIE_SLOPE = 1e-3
#: The ratios a channel group may get: a 1% grid.
RATIO_GRID = np.linspace(0.0, MAX_RATIO, 91)
#: Costs whose λ is a price (points of drop per fraction of the cost saved), not a drop.
PRICED = ("params", "latency")


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
    #: Fraction of the predicted latency kept at each ratio (filled for a latency cost).
    latency_fraction: list[float] = field(default_factory=list)

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

    def saved_at(self, ratio: float, cost: str = "params") -> float:
        """Fraction of the parameters (or of the predicted latency: ``cost``) this cut alone
        removes, linear between probes."""
        kept = getattr(self, f"{cost}_fraction")
        if not kept:
            what = "parameter" if cost == "params" else cost
            raise ValueError(f"curve {self.key!r} has no {what} fractions")
        xs = [0.0, *self.ratios]
        ys = [0.0, *[1.0 - f for f in kept]]
        if ratio <= xs[-1]:
            return float(np.interp(ratio, xs, ys))
        return float(ys[-1] * ratio / xs[-1])  # a channel cut removes weights in proportion

    def within(self, ratio: float, threshold: float, cost: str = "macs") -> bool:
        """Whether cutting ``ratio`` stays within λ: a drop, or (a priced ``cost``) a price
        per fraction of the cost saved."""
        limit = threshold * self.saved_at(ratio, cost) if cost in PRICED else threshold
        return self.drop_at(ratio) <= limit

    def ratio_for(self, threshold: float, cap: float = MAX_RATIO, *, cost: str = "macs") -> float:
        """The largest ratio (on a 1% grid, at most ``cap``) within ``threshold``: a drop in
        points, or (a priced ``cost``) points of drop per fraction of the cost saved."""
        if self.kind == "block":
            return 1.0 if self.within(1.0, threshold, cost) else 0.0
        ok = [r for r in RATIO_GRID if r <= cap + 1e-9 and self.within(float(r), threshold, cost)]
        return float(ok[-1]) if ok else 0.0

    def price_at(self, ratio: float, cost: str = "macs") -> float:
        """The smallest threshold λ within which ``ratio`` may be cut (inf: never)."""
        drop = self.drop_at(ratio)
        if cost not in PRICED:
            return drop
        saved = self.saved_at(ratio, cost)
        return drop / saved if saved > 0 else float("inf")

    def candidate_ratios(self, cap: float = MAX_RATIO) -> list[float]:
        """The ratios :meth:`ratio_for` can return besides 0."""
        if self.kind == "block":
            return [1.0]
        return [float(r) for r in RATIO_GRID[1:] if r <= cap + 1e-9]

    def top_price(self, cost: str = "macs") -> float:
        """The threshold at which this curve is cut as far as it goes."""
        worst = self.drop_at(self.top)
        return worst / max(self.saved_at(self.top, cost), 1e-9) if cost in PRICED else worst

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "channels": self.channels,
            "ratios": self.ratios,
            "drops": self.drops,
            "macs_fraction": self.macs_fraction,
            "kind": self.kind,
            **({"params_fraction": self.params_fraction} if self.params_fraction else {}),
            **({"latency_fraction": self.latency_fraction} if self.latency_fraction else {}),
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
    importance: str | GroupImportance
    round_to: int
    #: No channel group is planned below this many channels (see ``CompressConfig``).
    min_channels: int = 1
    #: The training batches a data-driven criterion scored the channels on (None: the
    #: criterion reads no data); every prune of a trial scores on the same ones.
    calib: list[Any] | None = None
    base_macs: int = field(init=False)
    base_params: int = field(init=False)
    #: Residual blocks that can be removed whole (see ``slimkit.graph.removable_blocks``).
    blocks: list[str] = field(init=False)
    #: Milliseconds per layer of the unpruned model on the deployment backend (module path →
    #: ms), for the latency cost; set by the plan (``slimkit.quantize.layer_times``).
    layer_ms: dict[str, float] = field(default_factory=dict)
    #: Measured prices of every probed cut on the deployment runtime (the latency cost); when
    #: unset, :attr:`layer_ms` scaled by the MACs each layer keeps.
    latency_table: LatencyTable | None = None
    base_layer_macs: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.base_macs = count_macs(self.model, self.example)
        self.base_params = count_params(self.model)
        self.blocks = removable_blocks(self.model, self.example)
        self.base_layer_macs = layer_macs(self.model, self.example)

    @classmethod
    def build(
        cls,
        model: nn.Module,
        splits: Splits,
        importance: str | GroupImportance,
        round_to: int = 1,
        min_channels: int = 1,
    ) -> Pruner:
        model = copy.deepcopy(model).cpu().eval()
        example = splits.example_input(1)
        graph = DependencyGraph.build(model, example)
        criterion = group_criterion(importance)
        calib = None
        if criterion.needs_data:
            loader = make_loader(splits.train, batch_size=64, shuffle=True, seed=1234)
            calib = list(islice(iter(loader), 4))
        scores = unit_scores(graph, criterion(graph, model, calib))
        return cls(model, example, graph, scores, importance, round_to, min_channels, calib)

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
        """Fraction of the MACs, of the parameters or of the predicted latency (``cost``) kept
        after pruning."""
        if cost == "params":
            return count_params(self.prune(ratios)) / self.base_params
        if cost == "latency":
            return self.latency_fraction(self.prune(ratios))
        return self.macs_fraction(ratios)

    def latency_fraction(self, model: nn.Module) -> float:
        """Predicted fraction of the deployed latency that ``model`` (a pruned copy) keeps.

        From :attr:`latency_table` when the plan measured one; otherwise every layer costs its
        measured time per MAC (:attr:`layer_ms`) times the MACs it keeps, and a layer that was
        not timed costs the average time per MAC of those that were.
        """
        if self.latency_table is not None:
            return self.latency_table.fraction(model)
        if not self.layer_ms:
            raise ValueError("the latency cost needs per-layer times: set Pruner.layer_ms")
        timed = {k: v for k, v in self.layer_ms.items() if self.base_layer_macs.get(k)}
        average = sum(timed.values()) / sum(self.base_layer_macs[k] for k in timed)
        per_mac = {
            name: timed[name] / macs if name in timed else average
            for name, macs in self.base_layer_macs.items()
        }
        now = layer_macs(model, self.example)
        kept = sum(per_mac.get(name, average) * macs for name, macs in now.items())
        return kept / sum(per_mac[name] * macs for name, macs in self.base_layer_macs.items())


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
    metric: Metric | None = None,
) -> tuple[float, list[GroupCurve]]:
    """Prune each group alone at each ratio and measure the validation drop (no fine-tuning),
    in ``metric`` (top-1 by default)."""
    subset = take(splits.val, images)
    score = metric or Metric()
    base = score(pruner.model, subset)
    keys = pruner.group_keys()
    curves: list[GroupCurve] = []
    for index, (key, channels) in enumerate(keys):
        drops, fractions = [], []
        for ratio in ratios:
            pruned = pruner.prune({key: ratio})
            drops.append(score.drop(base, score(pruned, subset)))
            fractions.append(count_macs(pruned, pruner.example) / pruner.base_macs)
        curves.append(GroupCurve(key, channels, list(ratios), drops, fractions))
        if on_probe is not None:
            on_probe(index + 1, len(keys))
    return base, curves


def measure_block_curves(
    pruner: Pruner,
    splits: Splits,
    images: int,
    base: float | None = None,
    metric: Metric | None = None,
) -> list[GroupCurve]:
    """Remove each residual block alone and measure the validation drop (no fine-tuning).

    ``base`` is the original's accuracy on the same ``images`` validation images, when the
    sensitivity stage measured it already.
    """
    subset = take(splits.val, images)
    score = metric or Metric()
    if base is None:
        base = score(pruner.model, subset)
    curves = []
    for key in pruner.blocks:
        pruned = pruner.prune({key: 1.0})
        drop = score.drop(base, score(pruned, subset))
        fraction = count_macs(pruned, pruner.example) / pruner.base_macs
        params = [count_params(pruned) / pruner.base_params]
        curves.append(GroupCurve(key, 0, [1.0], [drop], [fraction], "block", params))
    return curves


def cost_fractions(pruner: Pruner, curves: list[GroupCurve], cost: str) -> dict[str, list[float]]:
    """Fraction of the parameters or of the predicted latency (``cost``) kept at each probed
    ratio of each curve (no evaluation); fractions a curve already holds are kept."""
    return {
        c.key: getattr(c, f"{cost}_fraction")
        or [pruner.fraction({c.key: r}, cost) for r in c.ratios]
        for c in curves
    }


def allocate(
    curves: list[GroupCurve],
    threshold: float,
    caps: dict[str, float] | None = None,
    *,
    cost: str = "macs",
) -> dict[str, float]:
    """Per-group ratios at a common threshold λ, each at most its cap: a drop in points, or
    (a priced ``cost``) a price in points per fraction of the cost saved."""
    caps = caps or {}
    return {c.key: c.ratio_for(threshold, caps.get(c.key, MAX_RATIO), cost=cost) for c in curves}


def plan_for_keep(
    pruner: Pruner,
    curves: list[GroupCurve],
    keep: float,
    cost: str = "macs",
) -> tuple[dict[str, float], float]:
    """The allocation at the smallest threshold λ whose pruned model keeps at most ``keep`` of
    its MACs, parameters or predicted latency (``cost``).

    The allocation changes only at the λ where some curve admits a larger ratio, so the search
    bisects over those prices rather than over a range of λ: groups whose measured drop is nil
    differ only by the tie slope, far below any fixed resolution of λ, and a bisection of the
    range jumped from pruning nothing to cutting all of them at once.

    Returns the per-group ratios and the fraction they achieve. When even the largest
    ratios keep more than ``keep``, those ratios are returned with their (higher) fraction.
    """
    if keep >= 1.0 or not curves:
        return {}, 1.0
    caps = pruner.caps(curves)
    prices = sorted(
        {
            # Nudged up so that ``within`` holds at the price despite rounding.
            price * (1.0 + 1e-9) + 1e-12
            for c in curves
            for r in c.candidate_ratios(caps.get(c.key, MAX_RATIO))
            if math.isfinite(price := c.price_at(r, cost))
        }
    )
    if not prices:
        return {}, 1.0
    found: dict[int, tuple[dict[str, float], float]] = {}

    def at(index: int) -> tuple[dict[str, float], float]:
        if index not in found:
            ratios = allocate(curves, prices[index], caps, cost=cost)
            found[index] = ratios, pruner.fraction(ratios, cost)
        return found[index]

    last = len(prices) - 1
    if at(last)[1] > keep:
        return at(last)

    def keeps_more(index: float) -> bool | None:
        return at(int(index))[1] > keep

    # Invariant: the allocation at ``fails_at`` keeps at most ``keep``; at ``holds_at`` (-1:
    # nothing cut) it keeps more. Stop when the two ends are neighbours.
    holds, fails = -1.0, float(last)
    while fails - holds > 1:
        holds, fails = bisect(holds, fails, keeps_more, steps=1, snap=_floor)
    return at(int(fails))


def _floor(point: float) -> float:
    return float(math.floor(point))
