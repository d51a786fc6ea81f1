"""The distillation config: a frozen, keyword-only value that round-trips to a plain dict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .._config import ConfigBase
from ..runtime import RUNTIMES
from ..train import TrainConfig
from ._losses import LOGIT_LOSSES

AUTO = "auto"
HintLayers = tuple[tuple[str, str], ...] | str


def _hint_layers(value: object) -> HintLayers:
    """Normalise ``"auto"`` or an iterable of (student, teacher) name pairs; ValueError else."""
    if value == AUTO:
        return AUTO
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise ValueError(
            "DistillConfig.hint_layers must be 'auto' or a tuple of (student_layer, "
            f"teacher_layer) name pairs, got {value!r}"
        )
    pairs = []
    for pair in value:
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(n, str) and n for n in pair)
        ):
            raise ValueError(
                f"DistillConfig.hint_layers entries must be (student_layer, teacher_layer) "
                f"pairs of module names, got {pair!r}"
            )
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


@dataclass(frozen=True, kw_only=True)
class DistillConfig(ConfigBase):
    """How to distil a teacher into a student.

    The loss is ``alpha · T² · KL(teacher ‖ student at temperature T) + (1 - alpha) · CE``
    (see :class:`LogitKD`; with ``logit_loss="dkd"`` the KL term is decoupled into its
    target-class and non-target-class parts, the latter weighted by ``beta``, see
    :class:`DecoupledKD`), plus ``hint_weight`` × the FitNets loss (:class:`HintKD`) and
    ``attention_weight`` × attention transfer (:class:`AttentionTransfer`) over the paired
    layers of ``hint_layers``.

    Attributes:
        temperature: softmax temperature T > 0 of the logit term.
        alpha: weight of the logit distillation term in [0, 1] (0 = plain cross-entropy).
        logit_loss: ``kd`` (Hinton) or ``dkd`` (decoupled KD), from :data:`LOGIT_LOSSES`.
        beta: DKD's weight of the non-target-class term (>= 0; unused by ``kd``).
        hint_layers: ``()`` (logits only), ``"auto"`` (the last feature map of each spatial
            size that both models produce, paired by size), or ``(student, teacher)`` module
            name pairs whose outputs are compared.
        hint_weight: weight of the FitNets loss over ``hint_layers`` (>= 0).
        attention_weight: weight of attention transfer over ``hint_layers`` (>= 0).
        train: optimiser, schedule, epochs and seed of the student's training.
        cache_teacher: compute the teacher's logits once instead of every epoch. Used only
            when it is exact: logits only (no feature losses), in-memory training tensors,
            ``train.augment == "none"`` (an augmented view needs its own logits), and the
            logits fit in 1 GiB; otherwise ignored.
        teacher_runtime: where the frozen teacher runs on a CPU: ``auto`` (time eager
            PyTorch and every installed runtime on one batch, keep the fastest whose logits
            agree with PyTorch's), ``torch``, or a runtime name (``onnxruntime``,
            ``openvino``). Feature losses and GPU training always use PyTorch.

    Example:
        >>> cfg = DistillConfig(temperature=4.0, alpha=0.9, train=TrainConfig(epochs=10))
    """

    temperature: float = 4.0
    alpha: float = 0.9
    logit_loss: str = "kd"
    beta: float = 8.0
    hint_layers: HintLayers = ()
    hint_weight: float = 1.0
    attention_weight: float = 0.0
    train: TrainConfig = field(default_factory=TrainConfig)
    cache_teacher: bool = True
    teacher_runtime: str = AUTO

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(
                f"DistillConfig.temperature must be a finite number > 0, got {self.temperature}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"DistillConfig.alpha must be in [0, 1], got {self.alpha}")
        if self.logit_loss not in LOGIT_LOSSES:
            raise ValueError(
                f"DistillConfig.logit_loss must be one of {LOGIT_LOSSES.names()}, got "
                f"{self.logit_loss!r}"
            )
        for name in ("beta", "hint_weight", "attention_weight"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"DistillConfig.{name} must be a finite number >= 0, got {value}")
        object.__setattr__(self, "hint_layers", _hint_layers(self.hint_layers))
        if self.attention_weight > 0 and not self.hint_layers:
            raise ValueError(
                "DistillConfig.attention_weight > 0 needs layers to compare: set "
                "hint_layers='auto' or name (student, teacher) pairs"
            )
        if not isinstance(self.train, TrainConfig):
            raise ValueError("DistillConfig.train must be a slimkit.TrainConfig")
        if not isinstance(self.cache_teacher, bool):
            raise ValueError(
                f"DistillConfig.cache_teacher must be True or False, got {self.cache_teacher!r}"
            )

        runtimes = (AUTO, "torch", *RUNTIMES.names())
        if self.teacher_runtime not in runtimes:
            raise ValueError(
                f"DistillConfig.teacher_runtime must be one of {list(runtimes)}, got "
                f"{self.teacher_runtime!r}"
            )

    @property
    def uses_features(self) -> bool:
        """Whether a feature loss (hints or attention) is active."""
        return bool(self.hint_layers) and (self.hint_weight > 0 or self.attention_weight > 0)
