"""Importance criteria: which weights (or channels) matter least."""

from __future__ import annotations

from collections.abc import Callable

from .._registry import Registry
from ._base import ElementwiseImportance, Scores
from ._criteria import ActivationImportance, MagnitudeImportance, RandomImportance, TaylorImportance
from ._group import (
    ActivationGroupImportance,
    BNScaleImportance,
    GroupImportance,
    GroupScores,
    MagnitudeGroupImportance,
    RandomGroupImportance,
    TaylorGroupImportance,
    unit_scores,
)

#: Element-wise criteria by name, for configs and the CLI.
ELEMENTWISE: Registry[Callable[[], ElementwiseImportance]] = Registry("importance criterion")
ELEMENTWISE.register("magnitude", MagnitudeImportance)
ELEMENTWISE.register("taylor", TaylorImportance)
ELEMENTWISE.register("activation", ActivationImportance)
ELEMENTWISE.register("random", RandomImportance)

#: Group criteria by name, for structured pruning: one score per channel, head or conv group.
GROUP: Registry[Callable[[], GroupImportance]] = Registry("group importance criterion")
GROUP.register("l1", lambda: MagnitudeGroupImportance(p=1))
GROUP.register("l2", lambda: MagnitudeGroupImportance(p=2))
GROUP.register("bn-scale", BNScaleImportance)
GROUP.register("taylor", TaylorGroupImportance)
GROUP.register("activation", lambda: ActivationGroupImportance(statistic="mean"))
GROUP.register("apoz", lambda: ActivationGroupImportance(statistic="apoz"))
GROUP.register("random", RandomGroupImportance)

__all__ = [
    "ELEMENTWISE",
    "GROUP",
    "ActivationGroupImportance",
    "ActivationImportance",
    "BNScaleImportance",
    "ElementwiseImportance",
    "GroupImportance",
    "GroupScores",
    "MagnitudeGroupImportance",
    "MagnitudeImportance",
    "RandomGroupImportance",
    "RandomImportance",
    "Scores",
    "TaylorGroupImportance",
    "TaylorImportance",
    "unit_scores",
]
