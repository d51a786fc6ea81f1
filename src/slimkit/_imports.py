"""Importing a user's ``package.module:function`` by name (model factories, metrics)."""

from __future__ import annotations

import importlib
from typing import Any


def import_function(spec: str, what: str, error: type[Exception]) -> Any:
    """The callable ``function`` of ``package.module:function``, for ``what`` (in messages).

    Raises:
        error: if the module cannot be imported or has no such callable.
    """
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise error(
            f"cannot import {module_name!r} for {what} {spec!r} ({err}); run from the directory "
            "that holds it or add it to PYTHONPATH"
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise error(f"module {module_name!r} has no function {name!r}")
    return function
