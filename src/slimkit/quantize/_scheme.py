"""The quantization schemes by name: one registry that the verb, artifacts and the CLI read.

A :class:`Scheme` ties a name to a config type, the function that quantizes a model and the
one that rebuilds a quantized structure from an artifact. :func:`register_scheme` is the whole
of adding one: ``slimkit.quantize(model, cfg)`` dispatches on the config's type,
:func:`~slimkit.quantize.config_from_dict` (and so ``slimkit.load``) finds the config type by
name, and ``slimkit quantize --scheme`` lists the names when its parser is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from ._graph import QuantReport

QuantizeHandler = Callable[..., "tuple[nn.Module, QuantReport]"]
RestoreHandler = Callable[["nn.Module", Any], "nn.Module"]


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme: its name, config type, and how it is applied and restored.

    Attributes:
        name: the scheme's name in artifacts and on the command line (``int8-static``).
        config_type: the frozen config dataclass whose instances select the scheme.
        apply: ``apply(model, cfg, *, calib_data, data, device, progress)`` returning the
            quantized model and a :class:`~slimkit.quantize.QuantReport`; it must not modify
            ``model``.
        restore: ``restore(fresh_float_model, cfg)`` returning the quantized module structure,
            whose state dict an artifact then fills.
        rebuilt_report_keys: report keys that ``restore`` recomputes (set as the restored
            model's ``RESTORED_REPORT_ATTR``); artifacts leave them out.
    """

    name: str
    config_type: type
    apply: QuantizeHandler
    restore: RestoreHandler
    rebuilt_report_keys: tuple[str, ...] = ()


#: Every scheme by name; :func:`register_scheme` adds one.
SCHEMES: Registry[Scheme] = Registry("quantization scheme")


def register_scheme(
    name: str,
    config_type: type,
    apply: QuantizeHandler,
    restore: RestoreHandler,
    *,
    rebuilt_report_keys: tuple[str, ...] = (),
) -> Scheme:
    """Make a quantization scheme usable everywhere: the API, artifacts and the CLI.

    Args:
        name: the scheme's name (``--scheme NAME``; the ``scheme`` key of its config dict).
        config_type: a frozen dataclass; its fields are the config dict's other keys (nested
            configs, tuples and unions are rebuilt from the field types). A
            :class:`slimkit.ConfigBase` with a ``TAG`` must be tagged ``("scheme", name)``.
        apply: see :class:`Scheme`.
        restore: see :class:`Scheme`.
        rebuilt_report_keys: see :class:`Scheme`.

    Raises:
        ValueError: if the name or the config type is registered already, or the type is
            not a dataclass or carries another scheme's tag.

    Example:
        >>> register_scheme("int8-per-tensor", PerTensorConfig, apply_int8, restore_int8)
        >>> q = slimkit.quantize(model, PerTensorConfig(), backend="torch")
    """
    if not (isinstance(config_type, type) and dataclasses.is_dataclass(config_type)):
        raise ValueError(f"scheme {name!r}: config_type must be a dataclass, got {config_type!r}")
    tag = getattr(config_type, "TAG", None)
    if tag is not None and tuple(tag) != ("scheme", name):
        raise ValueError(
            f"scheme {name!r}: {config_type.__name__}.TAG is {tag!r}, not ('scheme', {name!r})"
        )
    for known in SCHEMES:
        if SCHEMES.get(known).config_type is config_type:
            raise ValueError(f"{config_type.__name__} is scheme {known!r} already")
    scheme = Scheme(name, config_type, apply, restore, tuple(rebuilt_report_keys))
    SCHEMES.register(name, scheme)
    return scheme


def scheme_for(cfg: Any) -> Scheme:
    """The scheme of a config (by its exact type: ``QATConfig`` is not ``Int8StaticConfig``).

    Raises:
        TypeError: for an object of no registered config type; the message lists them.
    """
    for name in SCHEMES:
        scheme = SCHEMES.get(name)
        if type(cfg) is scheme.config_type:
            return scheme
    known = ", ".join(SCHEMES.get(n).config_type.__name__ for n in SCHEMES)
    raise TypeError(
        f"quantize() takes one of {known}, got {type(cfg).__name__} (a new scheme is added "
        "with slimkit.quantize.register_scheme)"
    )


def scheme_of(cfg: Any) -> str:
    """The scheme name of a config (``int8-static``, ``qat``, ...)."""
    return scheme_for(cfg).name
