"""Training recipes: a YAML file naming the model, the data, the output and a TrainConfig."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ._config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class TrainRecipe:
    """What ``slimkit train --recipe FILE`` trains, and how.

    Attributes:
        model: a registered model name (``resnet20``, ``torchvision:mobilenet_v3_small``, ...).
        out: the artifact to write (``.safetensors``).
        data: the dataset, as ``--data`` takes it.
        train: the training config; its keys are :class:`TrainConfig`'s fields.
    """

    model: str
    out: str
    data: str = "fashion-mnist"
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "recipe") -> TrainRecipe:
        """The recipe ``values`` describe.

        Raises:
            ValueError: for an unknown or missing key, or a bad training value.
        """
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown keys {unknown}; valid keys: {known}")
        missing = [key for key in ("model", "out") if key not in values]
        if missing:
            raise ValueError(f"{source}: the recipe needs {missing}")
        section = values.get("train") or {}
        if not isinstance(section, dict):
            raise ValueError(f"{source}: 'train' is a mapping of TrainConfig fields")
        try:
            cfg = TrainConfig.from_dict(section)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None
        return cls(
            model=str(values["model"]),
            out=str(values["out"]),
            data=str(values.get("data", "fashion-mnist")),
            train=cfg,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "out": self.out,
            "data": self.data,
            "train": self.train.to_dict(),
        }


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
        raise ValueError(f"{path}: a training recipe is a mapping of model, out, data, train")
    return TrainRecipe.from_dict(tree, source=str(path))
