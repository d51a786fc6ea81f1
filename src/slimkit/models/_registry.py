"""The model registry and the architecture spec stored in every artifact."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from .._attrs import ARCH_ATTR
from .._registry import Registry
from ..errors import ModelError
from ._args import check_model_args, rejected
from ._resnet_cifar import resnet8, resnet20, resnet56
from ._seed_cnn import seed_cnn, seed_cnn_slim
from ._sources import TIMM_PREFIX, is_user_factory, timm_model, user_model
from ._torchvision import torchvision_model

ModelFactory = Callable[..., nn.Module]

#: Built-in model factories. Each takes keyword arguments ``in_channels``, ``num_classes`` and
#: ``image_size``. Names of the form ``torchvision:<name>`` resolve to torchvision models.
MODELS: Registry[ModelFactory] = Registry("model")
MODELS.register("seed-cnn", seed_cnn)
MODELS.register("seed-cnn-slim", seed_cnn_slim)
MODELS.register("resnet20", resnet20)
MODELS.register("resnet56", resnet56)
MODELS.register("resnet8", resnet8)

TORCHVISION_PREFIX = "torchvision:"


def create_model(
    name: str, *, model_args: Mapping[str, Any] | None = None, **kwargs: Any
) -> nn.Module:
    """Create a registered model with random weights.

    The returned module remembers how it was built (``model.slimkit_arch``) so that
    :func:`slimkit.save` can store it and :func:`slimkit.load` can rebuild it.

    Args:
        name: a registered name (``seed-cnn``, ``resnet20``, ...), ``torchvision:<name>``,
            ``timm:<name>`` (``pip install 'slimkit[timm]'``) or ``package.module:function``, a
            factory of yours (given those of the kwargs its signature names).
        model_args: architecture arguments passed as they are to the constructor ``name``
            names: ``timm.create_model``, ``torchvision.models.get_model``, your factory or
            the registered one. Values are JSON scalars or lists of them; they are recorded
            with the model, so that its artifacts rebuild the same architecture.
        **kwargs: ``in_channels``, ``num_classes``, ``image_size``.

    Example:
        >>> import slimkit
        >>> model = slimkit.create_model("seed-cnn", num_classes=10)
        >>> vit = slimkit.create_model(
        ...     "timm:vit_tiny_patch16_224",
        ...     model_args={"patch_size": 4, "depth": 6, "embed_dim": 96, "num_heads": 3},
        ... )

    Raises:
        ModelError: if the name is unknown, or its constructor refuses ``model_args`` (the
            message names the argument and what the constructor said).
        ValueError: if ``model_args`` holds a value JSON cannot, or sets an argument slimkit
            sets itself (``num_classes``, timm's ``pretrained``, ...).
    """
    args = check_model_args(model_args)
    if name.startswith(TORCHVISION_PREFIX):
        model = torchvision_model(name[len(TORCHVISION_PREFIX) :], model_args=args, **kwargs)
    elif name.startswith(TIMM_PREFIX):
        model = timm_model(name[len(TIMM_PREFIX) :], model_args=args, **kwargs)
    elif is_user_factory(name):
        model = user_model(name, model_args=args, **kwargs)
    else:
        model = _registered(name, args, kwargs)
    # model_args joins the record only when given: older artifacts' records stay as they were.
    recorded = {**kwargs, "model_args": args} if args else dict(kwargs)
    setattr(model, ARCH_ATTR, {"name": name, "kwargs": recorded})
    return model


def _registered(name: str, args: dict[str, Any], kwargs: dict[str, Any]) -> nn.Module:
    try:
        factory = MODELS.get(name)
    except KeyError as err:
        raise ModelError(
            f"{err.args[0]}, torchvision:<name>, timm:<name>, or package.module:function "
            "for a factory of yours"
        ) from None
    try:
        return factory(**kwargs, **args)
    except TypeError as err:
        if args:
            raise rejected(f"model {name!r}", args, err) from None
        raise ModelError(f"cannot build model {name!r} with {kwargs}: {err}") from None


def arch_of(model: nn.Module) -> dict[str, Any]:
    """Return the architecture spec of a model built by :func:`create_model` or loaded.

    Raises:
        ModelError: if the model was not built by slimkit and carries no spec.
    """
    arch = getattr(model, ARCH_ATTR, None)
    if arch is None:
        raise ModelError(
            "this model carries no slimkit architecture spec; build it with "
            "slimkit.create_model(name, ...) or load it with slimkit.load(path)"
        )
    return dict(arch)


def arch_record(model: nn.Module) -> dict[str, Any]:
    """The architecture an artifact records: :func:`arch_of`, or for a model built outside
    slimkit its class (``name`` None: it loads only onto an instance the caller passes)."""
    arch = getattr(model, ARCH_ATTR, None)
    if arch is not None:
        return dict(arch)
    cls = type(model)
    return {"name": None, "class": f"{cls.__module__}.{cls.__qualname__}", "kwargs": {}}


def model_names() -> list[str]:
    """Registered model names (torchvision models are reachable as ``torchvision:<name>``)."""
    return MODELS.names()
