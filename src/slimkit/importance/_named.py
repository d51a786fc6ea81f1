"""Criteria by name: the registries that configs, the CLI and error messages all read.

A config's ``importance`` is a registered name or a criterion object; :func:`group_criterion`
and :func:`elementwise_criterion` turn either into the object that scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._registry import Registry
from ._base import ElementwiseImportance
from ._criteria import ActivationImportance, MagnitudeImportance, RandomImportance, TaylorImportance
from ._group import (
    ActivationGroupImportance,
    BNScaleImportance,
    GroupImportance,
    MagnitudeGroupImportance,
    RandomGroupImportance,
    TaylorGroupImportance,
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


def group_criterion(importance: str | GroupImportance) -> GroupImportance:
    """The group criterion ``importance`` names (a fresh one from :data:`GROUP`), or itself.

    Example:
        >>> group_criterion("l1")
        MagnitudeGroupImportance(p=1, needs_data=False)
    """
    return GROUP.get(importance)() if isinstance(importance, str) else importance


def elementwise_criterion(importance: str | ElementwiseImportance) -> ElementwiseImportance:
    """The element-wise criterion ``importance`` names (from :data:`ELEMENTWISE`), or itself."""
    return ELEMENTWISE.get(importance)() if isinstance(importance, str) else importance


def check_importance(owner: str, importance: object, registry: Registry[Any], kind: type) -> None:
    """Raise ``ValueError`` unless ``importance`` is a name in ``registry`` (read now, so
    criteria registered after import count) or an object of the protocol ``kind``."""
    if isinstance(importance, str):
        if importance not in registry:
            raise ValueError(
                f"{owner}.importance must be one of {registry.names()} (or a "
                f"{kind.__name__} object), got {importance!r}"
            )
    elif not isinstance(importance, kind):
        raise ValueError(
            f"{owner}.importance must be a name in {registry.names()} or a criterion object "
            f"({kind.__name__}: name, needs_data and __call__), got {importance!r}"
        )
