"""Importance criteria: which weights (or channels) matter least."""

from __future__ import annotations

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
from ._named import ELEMENTWISE, GROUP, check_importance, elementwise_criterion, group_criterion

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
    "check_importance",
    "elementwise_criterion",
    "group_criterion",
    "unit_scores",
]
