"""``model_args``: architecture arguments a model source passes on to the constructor it names.

``create_model("timm:vit_tiny_patch16_224", model_args={"patch_size": 4, "depth": 6})`` hands
them to ``timm.create_model``; for ``torchvision:<name>`` they go to
``torchvision.models.get_model``, for ``package.module:function`` and registered names to the
factory. They are recorded in the model's architecture, so every value must survive JSON:
a string, number, boolean or null, or a list of those (tuples become lists, so that a model
built here and one rebuilt from its artifact see the same values).
"""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Mapping
from typing import Any

from ..errors import ModelError

#: The keyword arguments of :func:`slimkit.create_model` itself, which the data decide.
SLIMKIT_KWARGS = ("in_channels", "num_classes", "image_size")
_SCALARS = (str, int, float, bool, type(None))


def check_model_args(
    model_args: Mapping[str, Any] | None, *, where: str = "model_args"
) -> dict[str, Any]:
    """A plain, JSON-ready copy of ``model_args`` (tuples as lists).

    Raises:
        ValueError: for a key that is not a Python name or one of ``create_model``'s own
            (``in_channels``, ``num_classes``, ``image_size``), or a value that JSON cannot
            hold; the message names the key.
    """
    if model_args is None:
        return {}
    if not isinstance(model_args, Mapping):
        raise ValueError(f"{where} is a mapping of argument names to values, got {model_args!r}")
    plain: dict[str, Any] = {}
    for key, value in model_args.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{where} key {key!r} is not a Python argument name")
        if key in SLIMKIT_KWARGS:
            raise ValueError(
                f"{where} cannot set {key!r}: pass it to create_model itself "
                f"({key}=...); the CLI reads it from the data"
            )
        plain[key] = _json_value(value, f"{where} {key!r}")
    return plain


def _json_value(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}, which JSON cannot hold; give a finite number")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item, where) for item in value]
    raise ValueError(
        f"{where} is a {type(value).__name__}; model_args values are strings, numbers, "
        "booleans, null, or lists of them"
    )


def refuse_reserved(model_args: Mapping[str, Any], reserved: Mapping[str, str]) -> None:
    """Refuse the arguments a source sets itself; ``reserved`` maps each to the reason.

    Raises:
        ValueError: naming the first reserved key given and why slimkit sets it.
    """
    for key in model_args:
        if key in reserved:
            raise ValueError(f"model_args cannot set {key!r}: {reserved[key]}")


def rejected(source: str, model_args: Mapping[str, Any], err: BaseException) -> ModelError:
    """The one-line error for a constructor that refused ``model_args``: the key its message
    names (else all of them) and what it said."""
    said = (str(err).strip().splitlines() or [""])[0] or _failed_line(err)
    named = [key for key in model_args if re.search(rf"\b{re.escape(key)}\b", said)]
    key = named[0] if named else None
    which = f"{key!r}={model_args[key]!r}" if key else str(dict(model_args))
    return ModelError(f"{source} rejected model_args {which}: {type(err).__name__}: {said}")


def _failed_line(err: BaseException) -> str:
    """The source line an exception without a message was raised at (a bare ``assert``)."""
    frames = traceback.extract_tb(err.__traceback__)
    return (frames[-1].line or "") if frames else ""
