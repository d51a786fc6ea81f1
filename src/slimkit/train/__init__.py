"""Training and fine-tuning."""

from ._augment import AUGMENTS
from ._checkpoint import load_checkpoint, save_checkpoint
from ._config import TrainConfig
from ._loop import TrainResult, cross_entropy_loss, learning_rate, make_optimizer, train
from ._recipe import TrainRecipe, load_train_recipe

__all__ = [
    "AUGMENTS",
    "TrainConfig",
    "TrainRecipe",
    "TrainResult",
    "cross_entropy_loss",
    "learning_rate",
    "load_checkpoint",
    "load_train_recipe",
    "make_optimizer",
    "save_checkpoint",
    "train",
]
