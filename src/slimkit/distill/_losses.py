"""Knowledge-distillation losses as plain modules: logits (Hinton, DKD), hints (FitNets), attention.

Each loss takes the student's and the teacher's outputs (logits, or lists of feature maps
already captured from paired layers) and returns a scalar. None of them runs a model, so they
can be used in any training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._registry import Registry


class LogitKD(nn.Module):
    """Hinton et al. (2015): match the teacher's softened class distribution.

    ``loss = alpha · T² · KL(softmax(t / T) ‖ softmax(s / T)) + (1 - alpha) · CE(s, y)``

    The KL divergence is summed over classes and averaged over the batch; the T² factor keeps
    the gradient's scale independent of the temperature.

    Args:
        temperature: T > 0; higher values soften both distributions.
        alpha: weight of the distillation term in [0, 1]; the rest goes to cross-entropy.
        label_smoothing: label smoothing of the cross-entropy term.

    Example:
        >>> kd = LogitKD(temperature=4.0, alpha=0.9)
        >>> loss = kd(student(x), teacher(x).detach(), y)
    """

    def __init__(
        self, *, temperature: float = 4.0, alpha: float = 0.9, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"LogitKD.temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"LogitKD.alpha must be in [0, 1], got {alpha}")
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.label_smoothing = float(label_smoothing)

    def distillation(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), averaged over the batch."""
        t = self.temperature
        return (
            F.kl_div(
                F.log_softmax(student / t, dim=-1),
                F.log_softmax(teacher / t, dim=-1),
                reduction="batchmean",
                log_target=True,
            )
            * t
            * t
        )

    def distillation_term(
        self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        """The term ``alpha`` weighs (Hinton's ignores the labels)."""
        return self.distillation(student, teacher)

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None
    ) -> torch.Tensor:
        if student.shape != teacher.shape:
            raise ValueError(
                f"student logits {tuple(student.shape)} and teacher logits "
                f"{tuple(teacher.shape)} differ; both models must predict the same classes"
            )
        loss = self.distillation_term(student, teacher, target)
        if self.alpha == 1.0:
            return loss
        if target is None:
            raise ValueError("LogitKD with alpha < 1 mixes in cross-entropy: pass the labels")
        ce = F.cross_entropy(student, target, label_smoothing=self.label_smoothing)
        return self.alpha * loss + (1.0 - self.alpha) * ce


class DecoupledKD(LogitKD):
    """Decoupled KD (Zhao et al., CVPR 2022): the logit loss split into its two parts, reweighted.

    Hinton's KL term is ``TCKD + (1 − p_t) · NCKD``: *target-class* KD (the binary
    "right class vs the rest" distribution) plus *non-target-class* KD (the distribution over
    the wrong classes), the second scaled down by the teacher's own confidence ``1 − p_t`` on
    the true class. A confident teacher thus passes on almost none of its "dark knowledge";
    DKD weighs the parts independently:

    ``loss = alpha · T² · (TCKD + beta · NCKD) + (1 - alpha) · CE(s, y)``

    Args:
        temperature: T > 0.
        alpha: weight of the distillation term in [0, 1].
        beta: weight of the non-target-class term (8 in the paper's CIFAR-100 setting).
        label_smoothing: label smoothing of the cross-entropy term.

    Example:
        >>> dkd = DecoupledKD(temperature=4.0, alpha=0.5, beta=8.0)
        >>> loss = dkd(student(x), teacher(x).detach(), y)
    """

    def __init__(
        self,
        *,
        temperature: float = 4.0,
        alpha: float = 0.5,
        beta: float = 8.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(temperature=temperature, alpha=alpha, label_smoothing=label_smoothing)
        if not beta >= 0:
            raise ValueError(f"DecoupledKD.beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def distillation_term(
        self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        """T² · (TCKD + beta · NCKD), averaged over the batch."""
        if target is None:
            raise ValueError("DecoupledKD splits the loss at the true class: pass the labels")
        t = self.temperature
        mask = F.one_hot(target, student.shape[-1]).bool()
        log_s, log_t = F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1)
        tckd = F.kl_div(_binary(log_s, mask), _binary(log_t, mask), **_KL)
        # the true class masked out: a softmax over the wrong classes only
        nckd = F.kl_div(
            F.log_softmax(student / t - 1e4 * mask, dim=-1),
            F.log_softmax(teacher / t - 1e4 * mask, dim=-1),
            **_KL,
        )
        return (tckd + self.beta * nckd) * t * t


_KL: dict[str, Any] = {"reduction": "batchmean", "log_target": True}


def _binary(log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log [p(true class), p(any other class)] from per-class log-probabilities."""
    log_true = log_probs.masked_select(mask).unsqueeze(-1)
    log_rest = torch.log1p(-log_true.exp().clamp(max=1 - 1e-7))
    return torch.cat([log_true, log_rest], dim=-1)


#: Logit losses by ``DistillConfig.logit_loss`` name: ``factory(temperature=, alpha=, beta=,
#: label_smoothing=) -> LogitKD``.
LOGIT_LOSSES: Registry[Callable[..., LogitKD]] = Registry("logit loss")
LOGIT_LOSSES.register(
    "kd",
    lambda *, temperature, alpha, beta, label_smoothing: LogitKD(
        temperature=temperature, alpha=alpha, label_smoothing=label_smoothing
    ),
)
LOGIT_LOSSES.register("dkd", DecoupledKD)


def _adapter(student_shape: Sequence[int], teacher_shape: Sequence[int]) -> nn.Module:
    if len(student_shape) != len(teacher_shape):
        raise ValueError(
            f"a hint pairs a feature of shape {tuple(student_shape)} with one of shape "
            f"{tuple(teacher_shape)}; pair layers whose outputs have the same rank"
        )
    if len(student_shape) == 3:  # (C, H, W): a 1x1 convolution maps the channels
        if tuple(student_shape[1:]) != tuple(teacher_shape[1:]):
            raise ValueError(
                f"a hint pairs a {tuple(student_shape)} feature map with a {tuple(teacher_shape)} "
                "one; pair layers of the same spatial size (hint_layers='auto' does)"
            )
        return nn.Conv2d(student_shape[0], teacher_shape[0], 1, bias=False)
    if len(student_shape) in (1, 2):  # (C,) or (tokens, C): a linear map of the last dim
        if tuple(student_shape[:-1]) != tuple(teacher_shape[:-1]):
            raise ValueError(
                f"a hint pairs features of shape {tuple(student_shape)} and "
                f"{tuple(teacher_shape)}; only the last (channel) dimension may differ"
            )
        return nn.Linear(student_shape[-1], teacher_shape[-1], bias=False)
    raise ValueError(
        f"hints support (C, H, W), (tokens, C) and (C,) features, got {tuple(student_shape)}"
    )


class HintKD(nn.Module):
    """FitNets (Romero et al. 2015): regress the teacher's features from the student's.

    Each pair gets a learnable adapter (a 1x1 convolution for feature maps, a linear map for
    vectors and token sequences) from the student's width to the teacher's;
    ``loss = mean over pairs of MSE(adapter_i(s_i), t_i)``. The adapters are parameters of this
    module: train them with the student.

    Args:
        student_shapes: shape of each student feature, without the batch dimension.
        teacher_shapes: shape of the paired teacher feature, in the same order.

    Example:
        >>> hint = HintKD([(8, 14, 14)], [(32, 14, 14)])
        >>> loss = hint([student_feature], [teacher_feature])
    """

    def __init__(
        self, student_shapes: Sequence[Sequence[int]], teacher_shapes: Sequence[Sequence[int]]
    ) -> None:
        super().__init__()
        if len(student_shapes) != len(teacher_shapes) or not student_shapes:
            raise ValueError(
                f"HintKD needs one teacher shape per student shape (at least one), got "
                f"{len(student_shapes)} and {len(teacher_shapes)}"
            )
        self.adapters = nn.ModuleList(
            _adapter(s, t) for s, t in zip(student_shapes, teacher_shapes, strict=True)
        )

    def forward(
        self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        if len(student) != len(self.adapters) or len(teacher) != len(self.adapters):
            raise ValueError(
                f"HintKD has {len(self.adapters)} pairs but got {len(student)} student and "
                f"{len(teacher)} teacher features"
            )
        losses = [
            F.mse_loss(adapter(s), t)
            for adapter, s, t in zip(self.adapters, student, teacher, strict=True)
        ]
        return torch.stack(losses).mean()


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Zagoruyko & Komodakis (2017): the L2-normalised mean over channels of ``|f|^p``.

    Args:
        feature: a batch of feature maps (N, C, H, W).
        p: the exponent.

    Returns:
        (N, H·W): one unit-norm spatial attention vector per example.
    """
    if feature.dim() != 4:
        raise ValueError(
            f"attention maps need (N, C, H, W) feature maps, got shape {tuple(feature.shape)}"
        )
    return F.normalize(feature.abs().pow(p).mean(dim=1).flatten(1), dim=1)


class AttentionTransfer(nn.Module):
    """Attention transfer: match where the teacher's feature maps are active.

    ``loss = mean over pairs of mean over the batch of ‖Q_s / ‖Q_s‖ − Q_t / ‖Q_t‖‖₂`` with
    ``Q = mean_c |f_c|^p`` flattened over the spatial positions (see :func:`attention_map`).
    Channel counts may differ; the spatial sizes of each pair must match. The paper's β/2
    factor is left to the caller's weight.

    Args:
        p: the exponent of the attention map (2 in the paper).

    Example:
        >>> at = AttentionTransfer()
        >>> loss = at([student_feature], [teacher_feature])
    """

    def __init__(self, *, p: float = 2.0) -> None:
        super().__init__()
        if not p > 0:
            raise ValueError(f"AttentionTransfer.p must be > 0, got {p}")
        self.p = float(p)

    def forward(
        self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        if len(student) != len(teacher) or not student:
            raise ValueError(
                f"AttentionTransfer needs paired features, got {len(student)} student and "
                f"{len(teacher)} teacher features"
            )
        losses = []
        for s, t in zip(student, teacher, strict=True):
            if s.shape[2:] != t.shape[2:]:
                raise ValueError(
                    f"attention transfer pairs feature maps of spatial size {tuple(s.shape[2:])} "
                    f"and {tuple(t.shape[2:])}; pair layers of the same resolution"
                )
            diff = attention_map(s, self.p) - attention_map(t, self.p)
            losses.append(diff.norm(dim=1).mean())
        return torch.stack(losses).mean()
