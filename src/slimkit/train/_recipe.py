"""Training recipes: a YAML file naming the model (and its arguments), the data, the output and
a TrainConfig."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from .._config import ConfigBase
from ..models import check_model_args
from ._config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class TrainRecipe(ConfigBase):
    """What ``slimkit train --recipe FILE`` trains, and how.

    Attributes:
        model: a registered model name (``resnet20``, ``torchvision:mobilenet_v3_small``, ...).
        model_args: architecture arguments for the model's constructor, as
            :func:`slimkit.create_model` takes them (``{patch_size: 4, depth: 6}``).
        out: the artifact to write (``.safetensors``).
        data: the dataset, as ``--data`` takes it.
        train: the training config; its keys are :class:`TrainConfig`'s fields.
    """

    model: str
    out: str
    model_args: Mapping[str, Any] = field(default_factory=dict)
    data: str = "fashion-mnist"
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name in ("model", "out", "data"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(
                    f"TrainRecipe.{name} must be a string, got {getattr(self, name)!r}"
                )
        if not isinstance(self.train, TrainConfig):
            raise ValueError("TrainRecipe.train must be a slimkit.TrainConfig")
        args = check_model_args(self.model_args, where="TrainRecipe.model_args")
        object.__setattr__(self, "model_args", args)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "recipe") -> Self:
        """The recipe ``data`` describes; errors name ``source`` (the file).

        Raises:
            ValueError: for an unknown or missing key, or a bad training value.
        """
        values = dict(data)
        for key in ("train", "model_args"):
            if key in values and values[key] is None:  # ``train:`` left empty in YAML
                del values[key]
        try:
            return super().from_dict(values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None


def load_train_recipe(path: str | Path) -> TrainRecipe:
    """Read a training recipe file.

    Raises:
        ValueError: for a malformed file or an unknown key.
        FileNotFoundError: if the file does not exist.

    Example:
        >>> load_train_recipe("recipes/references/resnet20.yaml").train.epochs
        30
    """
    import yaml

    tree = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(tree, dict):
        raise ValueError(
            f"{path}: a training recipe is a mapping of model, model_args, out, data, train"
        )
    return TrainRecipe.from_dict(tree, source=str(path))
