"""Knowledge distillation (logits, hints, attention transfer) and structure slimming.

Example:
    >>> half = slimkit.slim(teacher, 0.5, example_inputs=torch.randn(1, 1, 28, 28))
    >>> cfg = slimkit.DistillConfig(hint_layers="auto", train=slimkit.TrainConfig(epochs=5))
    >>> slimkit.distill(half, teacher, splits, cfg)
"""

from ._api import distill, frozen_teacher, kd_loss
from ._config import AUTO, DistillConfig
from ._features import FeatureInfo, FeatureTap, auto_pairs, module_outputs, resolve_pairs
from ._losses import LOGIT_LOSSES, AttentionTransfer, DecoupledKD, HintKD, LogitKD, attention_map
from ._slim import INITS, reinitialise_, slim

__all__ = [
    "AUTO",
    "INITS",
    "LOGIT_LOSSES",
    "AttentionTransfer",
    "DecoupledKD",
    "DistillConfig",
    "FeatureInfo",
    "FeatureTap",
    "HintKD",
    "LogitKD",
    "attention_map",
    "auto_pairs",
    "distill",
    "frozen_teacher",
    "kd_loss",
    "module_outputs",
    "reinitialise_",
    "resolve_pairs",
    "slim",
]
