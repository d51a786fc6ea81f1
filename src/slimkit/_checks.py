"""Checks of config fields: exact kinds and finite numbers, one ``ValueError`` line each.

A NaN compares false with everything, so ``if value < 0: raise`` lets it through, and a
``trials: 1.5`` read from YAML would run 2 trials: every numeric field is checked here first.
"""

from __future__ import annotations

import math
import numbers


def check_int(field: str, value: object, *, minimum: int | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value}")


def check_number(
    field: str, value: object, *, minimum: float | None = None, positive: bool = False
) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (not a bool) in range.

    Args:
        field: the name the message gives, e.g. ``"CompressConfig.max_drop"``.
        value: the value to check.
        minimum: the smallest allowed value.
        positive: the value must be > 0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{field} must be > 0, got {value}")


def check_bool(field: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false, got {value!r}")


def check_str(field: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a string."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {value!r}")
