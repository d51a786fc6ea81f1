"""Training and fine-tuning."""

from ._checkpoint import load_checkpoint, save_checkpoint
from ._config import TrainConfig
from ._loop import TrainResult, cross_entropy_loss, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "cross_entropy_loss",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
