"""Training configuration."""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_int, check_number
from .._config import ConfigBase
from ._augment import AUGMENTS

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant", "warmup-linear")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(ConfigBase):
    """How to train or fine-tune a model.

    Attributes:
        epochs: passes over the training data (0 leaves the model as it is).
        lr: peak learning rate.
        batch_size: examples per step.
        optimizer: ``adam``, ``adamw`` or ``sgd`` (with Nesterov momentum 0.9).
        weight_decay: L2 penalty (decoupled for ``adamw``).
        schedule: ``cosine`` (decays to 0 over all steps), ``constant``, or
            ``warmup-linear`` (rises linearly over the first 5% of the steps, then falls
            linearly to 0).
        label_smoothing: cross-entropy label smoothing.
        seed: seeds shuffling, dropout and augmentation, so runs are repeatable.
        augment: training-batch augmentation, one of :data:`AUGMENTS` (``none``, or
            ``crop-flip``: a random crop of the image padded by 1/14 of its side, and a
            horizontal flip of half the images).

    Example:
        >>> TrainConfig(epochs=30, optimizer="sgd", lr=0.1, weight_decay=5e-4, augment="crop-flip")
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    seed: int = 0
    augment: str = "none"

    def __post_init__(self) -> None:
        # Kinds and finite values first: a NaN learning rate passed `lr <= 0`.
        check_int("TrainConfig.epochs", self.epochs, minimum=0)
        check_number("TrainConfig.lr", self.lr, positive=True)
        check_int("TrainConfig.batch_size", self.batch_size, minimum=1)
        check_number("TrainConfig.weight_decay", self.weight_decay, minimum=0)
        check_number("TrainConfig.label_smoothing", self.label_smoothing)
        check_int("TrainConfig.seed", self.seed)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"TrainConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if self.augment not in AUGMENTS:
            raise ValueError(
                f"TrainConfig.augment must be one of {AUGMENTS.names()}, got {self.augment!r}"
            )
