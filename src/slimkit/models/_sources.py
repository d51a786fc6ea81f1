"""Model sources beyond slimkit's registry: ``timm:<name>`` and a user's ``module:function``.

A user factory is named by where it lives (``mypkg.nets:make_net``); artifacts record that name
and their kwargs. Importing the module runs its code, so rebuilding a model from an artifact
that names one needs the user's consent (``slimkit.load(..., trust_code=True)``, the CLI's
``--trust-model-code``), unless this process already built a model from that factory itself.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping
from typing import Any

from torch import nn

from .._imports import import_function
from ..errors import MissingDependencyError, ModelError
from ._args import check_model_args, refuse_reserved, rejected
from ._torchvision import InputAdapter

TIMM_PREFIX = "timm:"
#: ``package.module:function`` (a dotted module path, a colon, a Python name).
_USER_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: Factories this process was asked to build by name (their code has run here already).
_TRUSTED: set[str] = set()
#: Set by :func:`allow_model_code` (the CLI's ``--trust-model-code``): every factory allowed.
_TRUST_ALL = False
#: Smallest side a timm model is built for and fed (smaller images are upsampled).
_TIMM_MIN_SIDE = 32


def is_user_factory(name: str) -> bool:
    """Whether ``name`` names a user's factory function (``module:function``)."""
    return bool(_USER_FACTORY.match(name)) and not name.startswith(("torchvision:", TIMM_PREFIX))


def allow_model_code() -> None:
    """Let this process import the user modules that artifacts name (``--trust-model-code``)."""
    global _TRUST_ALL
    _TRUST_ALL = True


def check_trusted(name: str, trust_code: bool) -> None:
    """Refuse to import a user factory named by an artifact unless the user allowed it.

    Raises:
        ModelError: naming the module and how to allow it.
    """
    if is_user_factory(name) and not (trust_code or _TRUST_ALL) and name not in _TRUSTED:
        module = name.partition(":")[0]
        raise ModelError(
            f"the artifact's model comes from {name!r}: loading it imports and runs module "
            f"{module!r}; if you trust it pass trust_code=True (CLI: --trust-model-code), or "
            "pass model=<a fresh instance> to slimkit.load"
        )


def _accepted(function: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``function`` takes (all of them if it takes ``**kw``)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params}
    return {k: v for k, v in kwargs.items() if k in names}


def user_model(
    name: str, *, model_args: Mapping[str, Any] | None = None, **kwargs: Any
) -> nn.Module:
    """Build a model with the user's factory ``module:function``.

    The factory receives those of ``in_channels``, ``num_classes`` and ``image_size`` that its
    signature names, and every one of ``model_args``.

    Raises:
        ModelError: if the module cannot be imported, the function is missing, refuses the
            arguments, or does not return an ``nn.Module``.
    """
    factory = import_function(name, "model", ModelError)
    _TRUSTED.add(name)
    args = check_model_args(model_args)
    try:
        model = factory(**_accepted(factory, kwargs), **args)
    except TypeError as err:
        if args:
            raise rejected(name, args, err) from None
        raise ModelError(f"cannot build model {name!r} with {kwargs}: {err}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{name} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _timm_reserved(timm: Any) -> dict[str, str]:
    """What ``model_args`` may not set for timm: ``timm.create_model``'s own parameters
    (pretrained weights, checkpoints, caches: nothing an artifact should make it read) and the
    arguments slimkit derives from the data."""
    own = inspect.signature(timm.create_model).parameters
    reserved = {
        key: "slimkit builds timm models with random weights and timm's defaults"
        for key, param in own.items()
        if param.kind is not inspect.Parameter.VAR_KEYWORD
    }
    for key, ours in (("num_classes", "num_classes"), ("in_chans", "in_channels")):
        reserved[key] = f"slimkit sets it from create_model's {ours}= (the data's, in the CLI)"
    reserved["img_size"] = (
        f"slimkit sets it to max(image_size, {_TIMM_MIN_SIDE}) (the data's side, in the CLI)"
    )
    return reserved


def timm_model(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    model_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build timm model ``name`` with random weights (never downloads), for small images.

    Models with a fixed input grid (ViT, DeiT, ...) are built for ``max(image_size, 32)``;
    smaller images are upsampled to that side in front of the model. ``model_args`` go to
    ``timm.create_model`` (``{"patch_size": 4, "depth": 6}``).

    Raises:
        MissingDependencyError: without timm (``pip install 'slimkit[timm]'``).
        ValueError: if ``model_args`` sets what slimkit sets (``num_classes``, ``pretrained``,
            ...) or holds a value JSON cannot.
        ModelError: if timm has no model ``name`` or cannot build it for these inputs and
            arguments.
    """
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        raise MissingDependencyError("timm models need timm: pip install 'slimkit[timm]'") from None
    args = check_model_args(model_args)
    refuse_reserved(args, _timm_reserved(timm))
    if name not in timm.list_models():
        raise ModelError(f"unknown timm model {name!r}; see timm.list_models()")
    side = max(image_size, _TIMM_MIN_SIDE)
    kwargs: dict[str, Any] = {
        "pretrained": False,
        "num_classes": num_classes,
        "in_chans": in_channels,
        **args,
    }
    try:
        try:
            model = timm.create_model(name, img_size=side, **kwargs)
        except TypeError:  # a model without a fixed input grid takes no img_size
            model = timm.create_model(name, **kwargs)
    except Exception as err:
        if args:
            raise rejected(f"timm model {name!r}", args, err) from None
        raise ModelError(f"timm cannot build {name!r} for {side}px inputs: {err}") from None
    return InputAdapter(model, in_channels=in_channels, min_side=side, gray_to_rgb=False)
