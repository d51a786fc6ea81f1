"""Importance criteria: which weights (or channels) matter least."""

from __future__ import annotations

from collections.abc import Callable

from .._registry import Registry
from ._base import ElementwiseImportance, Scores
from ._criteria import ActivationImportance, MagnitudeImportance, RandomImportance, TaylorImportance

#: Element-wise criteria by name, for configs and the CLI.
ELEMENTWISE: Registry[Callable[[], ElementwiseImportance]] = Registry("importance criterion")
ELEMENTWISE.register("magnitude", MagnitudeImportance)
ELEMENTWISE.register("taylor", TaylorImportance)
ELEMENTWISE.register("activation", ActivationImportance)
ELEMENTWISE.register("random", RandomImportance)

__all__ = [
    "ELEMENTWISE",
    "ActivationImportance",
    "ElementwiseImportance",
    "MagnitudeImportance",
    "RandomImportance",
    "Scores",
    "TaylorImportance",
]
