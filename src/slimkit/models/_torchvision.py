"""Any torchvision classification model, adapted to the dataset's channels and image size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ._args import check_model_args, refuse_reserved, rejected

# Smallest input side that every stage of these families accepts; others work from 32.
_MIN_SIDE = {"inception_v3": 75, "googlenet": 32, "alexnet": 63}
_DEFAULT_MIN_SIDE = 32
#: What ``model_args`` may not set: slimkit builds with random weights for the data's classes.
_RESERVED = {
    "weights": "slimkit builds torchvision models with random weights (never downloads)",
    "progress": "slimkit never downloads weights",
    "num_classes": "slimkit sets it from create_model's num_classes= (the data's, in the CLI)",
}


class InputAdapter(nn.Module):
    """Repeats grayscale input to RGB and upsamples images smaller than the model accepts.

    The adapter has no parameters, so pruning and quantization see only the wrapped model.
    """

    def __init__(
        self, model: nn.Module, *, in_channels: int, min_side: int, gray_to_rgb: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        self.in_channels = in_channels
        self.min_side = min_side
        self.gray_to_rgb = gray_to_rgb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1 and self.gray_to_rgb:
            x = x.expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < self.min_side:
            x = F.interpolate(x, size=(self.min_side, self.min_side), mode="bilinear")
        out = self.model(x)
        # GoogLeNet/Inception return named tuples with auxiliary logits in training mode.
        logits: torch.Tensor = out.logits if hasattr(out, "logits") else out
        return logits


def torchvision_classifiers() -> list[str]:
    """Names of all torchvision classification models."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def torchvision_model(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    model_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build torchvision model ``name`` with random weights (never downloads).

    ``model_args`` go to ``torchvision.models.get_model`` (``{"width_mult": 0.5}``).

    Raises:
        ValueError: if ``model_args`` sets ``weights``, ``progress`` or ``num_classes``, or
            holds a value JSON cannot.
        ModelError: if ``name`` is not a torchvision classification model, or it refuses
            ``model_args``.
    """
    import torchvision

    known = torchvision_classifiers()
    if name not in known:
        raise ModelError(
            f"unknown torchvision classification model {name!r}; known: {', '.join(known)}"
        )
    if in_channels not in (1, 3):
        raise ModelError(f"torchvision models take 1- or 3-channel images, got {in_channels}")
    args = check_model_args(model_args)
    refuse_reserved(args, _RESERVED)
    kwargs: dict[str, object] = {"weights": None, "num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    try:
        model = torchvision.models.get_model(name, **{**kwargs, **args})
    except Exception as err:
        if not args:
            raise
        raise rejected(f"torchvision model {name!r}", args, err) from None
    min_side = max(image_size, _MIN_SIDE.get(name, _DEFAULT_MIN_SIDE))
    if name.startswith(("vit_", "swin_", "maxvit")):
        min_side = max(min_side, 224)  # fixed patch grids / window sizes
    return InputAdapter(model, in_channels=in_channels, min_side=min_side)
