"""Domain errors raised by slimkit.

Every error message names the problem and how to fix it. Argument mistakes raise the built-in
``ValueError``/``TypeError``; failures of the data, the model or the compression job raise a
subclass of :class:`SlimkitError` so the CLI can print one clear line and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "AccuracyBudgetError",
    "ArtifactError",
    "DataError",
    "MissingDependencyError",
    "ModelError",
    "PruningTargetError",
    "SlimkitError",
    "UnsupportedOpError",
]


class SlimkitError(Exception):
    """Base class of slimkit's domain errors."""


class DataError(SlimkitError):
    """A dataset is missing, malformed or does not fit the model."""


class ModelError(SlimkitError):
    """A model name is unknown or weights do not match the architecture."""


class ArtifactError(SlimkitError):
    """A slimkit artifact is missing, truncated, corrupted or of an unknown format."""


class MissingDependencyError(SlimkitError):
    """An optional dependency is not installed; the message names the extra that installs it."""


class UnsupportedOpError(SlimkitError):
    """An operation cannot be handled by the requested transformation."""


class PruningTargetError(SlimkitError):
    """A structured pruning target cannot be met with the channels that may be removed.

    Attributes:
        report: what was reachable and what blocked the rest, for the user to inspect.
    """

    def __init__(self, message: str, report: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class AccuracyBudgetError(SlimkitError):
    """No candidate met the accuracy budget.

    Attributes:
        best: a description of the best candidate found, for the user to inspect.
    """

    def __init__(self, message: str, best: object | None = None) -> None:
        super().__init__(message)
        self.best = best
