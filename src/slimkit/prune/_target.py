"""The ratio search behind ``target_macs`` and ``target_latency``.

Bisecting one ratio shared by every group reaches a MACs or latency target when the metric
falls smoothly with the ratio. It does not when a group of few, heavy units couples many
layers, such as a transformer's residual width (24 blocks × 1024 channels in 16 units of 64
once rounded): one more unit of it moves the MACs of every block at once, by more than the
tolerance. The search then holds such coarse groups at the last step above the target and
bisects a second ratio for the other groups alone, which fills the gap in small steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from torch import nn

from .._bisect import bisect
from ..errors import PruningTargetError
from ..graph import DependencyGraph
from ._select import group_drops, prune_verified

if TYPE_CHECKING:
    from ._select import Candidate
    from ._structured import StructuredConfig

Metric = Callable[[nn.Module], float]
BISECTIONS = 10
#: Stands in for the pruned model of a candidate that can no longer be chosen.
RELEASED = nn.Module()


def metric_is_exact(cfg: StructuredConfig) -> bool:
    return cfg.goal[0] == "macs"


def blocked_summary(graph: DependencyGraph) -> str:
    reasons: list[str] = []
    for group in graph.groups:
        reasons.extend(r for r in group.reasons if r not in reasons)
    unsupported = ", ".join(f"{k} in {v[0]}" for k, v in graph.unsupported.items())
    text = "; ".join(reasons[:4]) or "none"
    return text + (f"; unsupported ops: {unsupported}" if unsupported else "")


class _Search:
    """The candidates evaluated so far, and the rule that says which is good enough."""

    def __init__(
        self,
        graph: DependencyGraph,
        model: nn.Module,
        scores: dict[int, float],
        cfg: StructuredConfig,
        target: float,
        measure: Callable[[nn.Module], float],
        tolerance: float,
    ) -> None:
        self.graph, self.model, self.scores, self.cfg = graph, model, scores, cfg
        self.target, self.measure, self.tolerance = target, measure, tolerance
        # A MACs target is a ceiling (count_macs is exact): stop only at or below it. Measured
        # latency is noisy, so a latency target accepts either side within the tolerance, and
        # bisects to half the tolerance: a re-measurement may land elsewhere in the band.
        self.ceiling = metric_is_exact(cfg)
        self.aim = tolerance if self.ceiling else tolerance / 2
        self.evaluated: list[tuple[float, Candidate]] = []

    def at(self, ratio: float, fixed: Mapping[int, int] | None = None) -> Candidate:
        candidate = prune_verified(
            self.graph, self.model, self.scores, self.cfg, ratio, stagger=True, fixed=fixed
        )
        candidate.fraction = self.measure(candidate.model)
        self.evaluated.append((ratio, candidate))
        self._release(keep=candidate)
        return candidate

    def _release(self, keep: Candidate) -> None:
        """Drop the pruned models no longer needed: all but the best so far and ``keep``.

        A candidate that ranks below another never becomes the best later (the ranking is a
        fixed order), so its model is not needed again; holding every copy of a 600M-parameter
        ViT-H through twenty steps would take over 20 GB.
        """
        best = self.best()
        for _, candidate in self.evaluated:
            if candidate is not best and candidate is not keep:
                candidate.model = RELEASED

    def done(self, fraction: float) -> bool:
        close = abs(fraction - self.target) <= self.aim * self.target
        return close and (fraction <= self.target or not self.ceiling)

    def within(self, candidate: Candidate) -> bool:
        return abs(candidate.fraction - self.target) <= self.tolerance * self.target

    def bisect(self, low: float, high: float, fixed: Mapping[int, int] | None = None) -> None:
        """Halve [low, high] until the last candidate is done (or the steps run out): a ratio
        that keeps more than the target moves ``low`` up, one that keeps less ``high`` down."""
        if self.done(self.evaluated[-1][1].fraction):
            return

        def keeps_more(ratio: float) -> bool | None:
            fraction = self.at(ratio, fixed).fraction
            return None if self.done(fraction) else fraction > self.target

        bisect(low, high, keeps_more, steps=BISECTIONS)

    def best(self) -> Candidate:
        """Among candidates close enough, one that meets the target (at or below it)."""
        return min(
            (c for _, c in self.evaluated),
            key=lambda c: (
                not self.within(c),
                c.fraction > self.target,
                abs(c.fraction - self.target),
            ),
        )


def _coarse_groups(graph: DependencyGraph, tolerance: float) -> list[int]:
    """Groups whose single unit is a larger share of the group than the tolerance."""
    return [g.index for g in graph.groups if 0 < len(g.units) < 1 / tolerance]


def _fill_the_gap(search: _Search) -> None:
    """Hold the coarse groups where the last ratio above the target left them; bisect the rest.

    Only for a per-group ratio (a global ranking has no shared ratio to split).
    """
    from ._config import Global

    if isinstance(search.cfg.scope, Global):
        return
    above = [(r, c) for r, c in search.evaluated if c.fraction > search.target]
    coarse = _coarse_groups(search.graph, search.tolerance)
    if not above or not coarse:
        return
    ratio, _ = min(above, key=lambda rc: rc[1].fraction)
    drops = group_drops(search.graph, search.scores, search.cfg, ratio, stagger=True)
    fixed = {index: drops[index] for index in coarse}
    search.at(search.cfg.max_ratio, fixed)
    if search.evaluated[-1][1].fraction <= search.target:
        search.bisect(ratio, search.cfg.max_ratio, fixed)


def search_target(
    graph: DependencyGraph,
    model: nn.Module,
    scores: dict[int, float],
    cfg: StructuredConfig,
    target: float,
    baseline: float,
    metric: Metric,
    tolerance: float,
) -> Candidate:
    """Search the ratio until the metric is within ``tolerance`` of ``target`` × baseline.

    Raises:
        PruningTargetError: if even the largest ratio allowed keeps more than the target, or
            no candidate comes within the tolerance.
    """
    search = _Search(graph, model, scores, cfg, target, lambda m: metric(m) / baseline, tolerance)
    deepest = search.at(cfg.max_ratio)
    if deepest.fraction > target * (1 + tolerance):
        raise PruningTargetError(
            f"cannot reach {target:.0%} of the original: removing the most allowed "
            f"(max_ratio={cfg.max_ratio}) keeps {deepest.fraction:.0%}; "
            f"{sum(g.blocked_units for g in graph.groups)} units are blocked "
            f"({blocked_summary(graph)}). Allow a larger max_ratio, ignore fewer layers, or "
            "aim higher",
            report={"reachable_fraction": deepest.fraction},
        )
    search.bisect(0.0, cfg.max_ratio)
    if not search.within(search.best()):
        _fill_the_gap(search)
    best = search.best()
    if not search.within(best):
        raise PruningTargetError(
            f"no ratio came within {tolerance:.0%} of {target:.0%} (closest: {best.fraction:.0%}); "
            "the model's units are too coarse for this target, try a nearby one",
            report={"closest_fraction": best.fraction},
        )
    return best
