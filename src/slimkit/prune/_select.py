"""Which units structured pruning removes, and one verified pruning at a ratio.

Each group loses the lowest-scored units its ratio allows (the same ratio everywhere, a
per-layer override, or a global ranking), rounded to the channel multiple; the pruned copy is
re-traced and checked against the plan, and a divergence blocks the op's channels and the plan
is redone.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from ..errors import UnsupportedOpError
from ..graph import DependencyGraph, Group, Structure, apply_plan
from ._config import Global, PerLayer

if TYPE_CHECKING:
    from ._structured import StructuredConfig

MAX_REPAIRS = 12


def _matches(name: str, pattern: str) -> bool:
    return name == pattern or fnmatch.fnmatchcase(name, pattern)


def scope_ratio(group: Group, scope: Global | PerLayer, default: float) -> float:
    """The ratio of ``group``: the first :class:`PerLayer` override matching one of its source
    modules (by name or ``fnmatch`` pattern), else ``default``."""
    if isinstance(scope, PerLayer):
        for pattern, value in scope.overrides.items():
            if any(_matches(m, pattern) for m in group.sources):
                return value
    return default


def round_count(count: int, step: int, total: int) -> int:
    """``count`` rounded to the nearest multiple of ``step``, at least ``step`` and at most the
    largest multiple of ``step`` within ``total`` (``total >= step``)."""
    return min(max(step, round(count / step) * step), total // step * step)


def lowest_units(units: Sequence[int], scores: Sequence[float], drop: int) -> list[int]:
    """The ``drop`` lowest-scored ``units`` (``scores[i]`` scores ``units[i]``); equal scores
    give up the lower label first."""
    order = sorted(range(len(units)), key=lambda i: (scores[i], units[i]))
    return [units[i] for i in order[: max(drop, 0)]]


def spend_budget(ranked: Iterable[int], budget: int, caps: Mapping[int, int]) -> dict[int, int]:
    """How many units each group (by index) loses to a global ranking.

    ``ranked`` names each unit's group, least important unit first; a group gives up its
    units in that order until ``budget`` units are gone, and never more than ``caps[group]``.
    """
    counts: dict[int, int] = dict.fromkeys(caps, 0)
    for index in ranked:
        if budget == 0:
            break
        if counts[index] < caps[index]:
            counts[index] += 1
            budget -= 1
    return counts


def _rounded_keep(group: Group, keep: int, round_to: int) -> tuple[int, str | None]:
    """Units to keep so that the layer's width is a multiple of ``round_to``."""
    if round_to == 1:
        return keep, None
    step = round_to // math.gcd(round_to, group.unit_size)
    total, blocked = len(group.units) + group.blocked_units, group.blocked_units
    if total < step:
        return len(group.units), (
            f"group {group.index} ({', '.join(group.modules[:2])}) has {total * group.unit_size} "
            f"channels, fewer than round_to={round_to}: left unpruned"
        )
    return max(round_count(keep + blocked, step, total) - blocked, 0), None


def _global_removals(
    graph: DependencyGraph, scores: dict[int, float], cfg: StructuredConfig, ratio: float
) -> dict[int, int]:
    """Global scope: rank units of all groups by importance normalised per group."""
    ranked: list[tuple[float, int]] = []
    for group in graph.groups:
        values = np.array([scores.get(int(u), 0.0) for u in group.units])
        scale = values.mean() if len(values) and values.mean() > 0 else 1.0
        ranked.extend((v / scale, group.index) for v in values)
    ranked.sort()
    caps = {g.index: math.floor(cfg.max_ratio * len(g.units)) for g in graph.groups}
    return spend_budget((index for _, index in ranked), round(ratio * len(ranked)), caps)


def group_drops(
    graph: DependencyGraph,
    scores: dict[int, float],
    cfg: StructuredConfig,
    ratio: float,
    *,
    stagger: bool = False,
) -> dict[int, int]:
    """How many units each group (by index) loses at ``ratio``, before rounding.

    ``stagger`` offsets each group's rounding differently, so that groups of equal size do not
    all lose a unit at the same ratio: MACs then fall smoothly with the ratio, which a target
    search needs (each group stays within one unit of the ratio).
    """
    if isinstance(cfg.scope, Global):
        return _global_removals(graph, scores, cfg, ratio)
    drops: dict[int, int] = {}
    for group in graph.groups:
        n = len(group.units)
        phase = (group.index * 0.6180339887) % 1.0 if stagger else 0.0
        share = min(scope_ratio(group, cfg.scope, ratio), cfg.max_ratio)
        drops[group.index] = min(
            math.floor(share * n + phase * (share > 0)), math.floor(cfg.max_ratio * n)
        )
    return drops


def select_units(
    graph: DependencyGraph,
    scores: dict[int, float],
    cfg: StructuredConfig,
    ratio: float,
    *,
    stagger: bool = False,
    fixed: Mapping[int, int] | None = None,
) -> tuple[list[int], list[str]]:
    """The units to remove at ``ratio`` and notes on groups left unpruned.

    ``fixed`` overrides the number of units removed from the groups it names (by index); see
    :func:`group_drops` for ``stagger``.
    """
    notes: list[str] = []
    removed: list[int] = []
    drops = {**group_drops(graph, scores, cfg, ratio, stagger=stagger), **(fixed or {})}
    for group in graph.groups:
        n = len(group.units)
        if n == 0:
            continue
        keep = max(n - drops[group.index], 1 if group.blocked_units == 0 else 0)
        keep, note = _rounded_keep(group, keep, cfg.round_to)
        if note:
            notes.append(note)
        units = group.units.tolist()
        removed.extend(lowest_units(units, [scores.get(u, 0.0) for u in units], n - keep))
    return removed, notes


# -- one verified pruning ------------------------------------------------------------------------


@dataclass
class Candidate:
    model: nn.Module
    structure: Structure
    removed: list[int]
    notes: list[str]
    fraction: float = 1.0


def prune_verified(
    graph: DependencyGraph,
    model: nn.Module,
    scores: dict[int, float],
    cfg: StructuredConfig,
    ratio: float,
    *,
    stagger: bool = False,
    fixed: Mapping[int, int] | None = None,
) -> Candidate:
    """Prune a copy of ``model`` at ``ratio`` and verify it; repair by blocking divergences.

    Raises:
        UnsupportedOpError: if the pruned model keeps diverging from the plan.
    """
    for _ in range(MAX_REPAIRS):
        removed, notes = select_units(graph, scores, cfg, ratio, stagger=stagger, fixed=fixed)
        pruned = copy.deepcopy(model)
        structure = apply_plan(pruned, graph.plan(removed))
        bad = graph.verify(pruned, removed)
        if bad is None:
            return Candidate(pruned, structure, removed, notes)
        if not graph.block_op(bad):
            break
    raise UnsupportedOpError(
        "the pruned model does not compute what the dependency graph planned "
        f"({'; '.join(graph.divergences[-3:])}); add the modules named there to ignore=, or "
        "register an op rule / module handler for them (slimkit.graph.register_op_rule)"
    )
