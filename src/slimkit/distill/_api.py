"""The distillation verb: train a student on a frozen teacher's outputs with ``slimkit.train``."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .._attrs import ARCH_ATTR
from .._device import resolve_device
from ..data import Splits
from ..data._splits import as_tensors
from ..errors import ModelError
from ..train import train
from ..train._loop import LossFn
from ._config import DistillConfig
from ._features import FeatureTap, resolve_pairs
from ._losses import LOGIT_LOSSES, AttentionTransfer, HintKD, LogitKD
from ._teacher import teacher_runner

CACHE_LIMIT_BYTES = 1 << 30  # cached teacher logits larger than this are recomputed instead


def _device_of(model: nn.Module) -> torch.device | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


@contextlib.contextmanager
def frozen_teacher(teacher: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """Put ``teacher`` on ``device`` in eval mode without gradients; restore it afterwards.

    A teacher in training mode would update its batch-norm statistics and drop out units while
    it teaches, so it is switched to eval mode (with a warning) for the duration.
    """
    if teacher.training:
        warnings.warn(
            "the teacher is in training mode; distillation runs it in eval mode",
            stacklevel=4,  # the caller of distill(), past contextlib's frames
        )
    was_training, original = teacher.training, _device_of(teacher)
    flags = [(p, p.requires_grad) for p in teacher.parameters()]
    teacher.eval().requires_grad_(False).to(device)
    try:
        yield teacher
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)
        teacher.train(was_training)
        if original is not None:
            teacher.to(original)


def kd_loss(
    teacher: nn.Module,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
    label_smoothing: float = 0.0,
) -> LossFn:
    """A ``loss_fn(model, x, y)`` for :func:`slimkit.train` that distils ``teacher``'s logits.

    Used to recover pruned models from their unpruned parent. The teacher runs in eval mode
    under ``torch.no_grad``, on the device of each batch.

    Example:
        >>> slimkit.train(pruned, splits, cfg, loss_fn=kd_loss(dense))
    """
    kd = LogitKD(temperature=temperature, alpha=alpha, label_smoothing=label_smoothing)

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if _device_of(teacher) != x.device:
            teacher.to(x.device)
        teacher.eval()
        with torch.no_grad():
            target = teacher(x)
        loss: torch.Tensor = kd(model(x), target, y)
        return loss

    return loss


class _Student(nn.Module):
    """The student and the hint adapters, trained (and checkpointed) together."""

    def __init__(self, student: nn.Module, hint: HintKD | None) -> None:
        super().__init__()
        self.student = student
        self.hint = hint

    def forward(self, x: Any) -> Any:
        return self.student(x)


@torch.no_grad()
def _check_outputs(student: nn.Module, teacher: nn.Module, example: torch.Tensor) -> None:
    was_training = student.training
    student.eval()
    try:
        s_out, t_out = student(example), teacher(example)
    finally:
        student.train(was_training)
    if not isinstance(s_out, torch.Tensor) or not isinstance(t_out, torch.Tensor):
        raise ModelError("distillation needs models that return a tensor of logits")
    if s_out.shape != t_out.shape:
        raise ModelError(
            f"the student predicts {tuple(s_out.shape[1:])} values per example but the teacher "
            f"{tuple(t_out.shape[1:])}; distil between models with the same number of classes "
            "(build the student with num_classes= the teacher's)"
        )


def _first_batch(data: Splits, size: int) -> torch.Tensor:
    """The first ``size`` training inputs (fewer if the split is smaller), as one batch."""
    tensors = as_tensors(data.train)
    if tensors is not None:
        return tensors[0][:size]
    count = min(size, len(data.train))  # type: ignore[arg-type]
    return torch.stack([torch.as_tensor(data.train[i][0]) for i in range(count)])


@torch.no_grad()
def _cache_logits(
    teacher: Callable[[torch.Tensor], torch.Tensor],
    data: Splits,
    cfg: DistillConfig,
    device: torch.device,
) -> tuple[Splits, torch.Tensor, torch.Tensor] | None:
    """Teacher logits for every training example, and the data re-labelled by example index.

    ``train`` shuffles; the loader then yields each example's index as its "label", so the
    loss can look up both the true label and the cached logits. Returns None when caching is
    not exact or too large (see :attr:`DistillConfig.cache_teacher`).
    """
    if (
        not cfg.cache_teacher
        or cfg.uses_features
        or cfg.train.epochs == 0
        or cfg.train.augment != "none"
    ):
        return None
    tensors = as_tensors(data.train)  # None: a Dataset that may augment on every access
    if tensors is None:
        return None
    x, labels = tensors
    example = teacher(x[:1].to(device))
    if len(x) * example.numel() * example.element_size() > CACHE_LIMIT_BYTES:
        return None
    logits = torch.cat([teacher(x[i : i + 512].to(device)) for i in range(0, len(x), 512)]).float()
    indexed = TensorDataset(x, torch.arange(len(x)))
    return dataclasses.replace(data, train=indexed), labels.to(device), logits


@dataclasses.dataclass
class _Objective:
    """The distillation loss as ``loss_fn(model, x, y)``, for :func:`slimkit.train`."""

    teacher: Callable[[torch.Tensor], torch.Tensor]  # x -> logits, without gradients
    logit: LogitKD
    cfg: DistillConfig
    hint: HintKD | None = None
    attention: AttentionTransfer | None = None
    student_tap: FeatureTap | None = None
    teacher_tap: FeatureTap | None = None
    cached: tuple[torch.Tensor, torch.Tensor] | None = None  # (labels, logits) by index

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.cached is not None:
            labels, logits = self.cached
            y, target = labels[y], logits[y]
        else:
            with torch.no_grad():
                target = self.teacher(x)
        loss: torch.Tensor = self.logit(model(x), target, y)
        if self.student_tap is None or self.teacher_tap is None:
            return loss
        s_feats, t_feats = self.student_tap.get(), self.teacher_tap.get()
        if self.hint is not None:
            loss = loss + self.cfg.hint_weight * self.hint(s_feats, t_feats)
        if self.attention is not None:
            loss = loss + self.cfg.attention_weight * self.attention(s_feats, t_feats)
        return loss


def _objective(
    student: nn.Module, teacher: nn.Module, data: Splits, cfg: DistillConfig
) -> tuple[_Objective, list[tuple[str, str]]]:
    example = _first_batch(data, 2).to(_device_of(teacher) or "cpu")
    _check_outputs(student, teacher, example)
    layers = cfg.hint_layers if cfg.uses_features else ()
    pairs, s_shapes, t_shapes = resolve_pairs(layers, student, teacher, example)
    objective = _Objective(
        teacher,
        LOGIT_LOSSES.get(cfg.logit_loss)(
            temperature=cfg.temperature,
            alpha=cfg.alpha,
            beta=cfg.beta,
            label_smoothing=cfg.train.label_smoothing,
        ),
        cfg,
    )
    if pairs:
        if cfg.hint_weight > 0:
            objective.hint = HintKD(s_shapes, t_shapes)
        if cfg.attention_weight > 0:
            if any(len(s) != 3 for s in s_shapes):
                raise ValueError(
                    f"attention transfer compares feature maps, but the pairs {pairs} include "
                    "non-(C, H, W) outputs; pair convolutional layers"
                )
            objective.attention = AttentionTransfer()
    return objective, pairs


def distill(
    student: nn.Module,
    teacher: nn.Module,
    data: Splits,
    cfg: DistillConfig,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> nn.Module:
    """Train ``student`` (in place) to match ``teacher`` as ``cfg`` says; return it in eval mode.

    The teacher runs in eval mode without gradients and is left as it was given. Hint adapters
    are trained with the student (and saved in ``checkpoint``) but are not part of the result.
    Both models are first run on two training examples to check that they predict the same
    number of classes and to find the layers ``cfg.hint_layers`` names.

    Args:
        student: the model to train, e.g. a slimmed or pruned copy of the teacher.
        teacher: the trained model whose outputs the student learns from.
        data: ``train`` is learnt from, ``val`` is measured after every epoch.
        cfg: losses, temperature and the student's :class:`~slimkit.TrainConfig`.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: show progress bars.
        checkpoint: file written after every epoch (student, adapters, optimiser).
        resume: continue from ``checkpoint`` if it exists.

    Raises:
        ModelError: if the models predict different numbers of classes.
        ValueError: if a hint layer does not exist (the message lists the model's modules).

    Example:
        >>> teacher = slimkit.load("seed-cnn.safetensors")
        >>> student = slimkit.create_model("seed-cnn-slim")
        >>> cfg = slimkit.DistillConfig(temperature=4, alpha=0.9, hint_layers="auto")
        >>> slimkit.distill(student, teacher, splits, cfg)
    """
    device = resolve_device(device)
    student.to(device)
    with frozen_teacher(teacher, device), contextlib.ExitStack() as stack:
        objective, pairs = _objective(student, teacher, data, cfg)
        runner = stack.enter_context(
            teacher_runner(
                teacher,
                _first_batch(data, cfg.train.batch_size).to(device),
                cfg.teacher_runtime,
                device=device,
                uses_features=cfg.uses_features,
            )
        )
        objective.teacher = runner.forward
        cached = _cache_logits(runner.forward, data, cfg, device)
        if cached is not None:
            data, *labels_logits = cached
            objective.cached = (labels_logits[0], labels_logits[1])
        wrapper = _Student(student, objective.hint)
        arch = getattr(student, ARCH_ATTR, None)
        if arch is not None:  # checkpoints record what they were written for
            hints = [[s, t] for s, t in pairs]
            setattr(wrapper, ARCH_ATTR, {"name": "distill", "student": arch, "hints": hints})
        if pairs:
            objective.student_tap = stack.enter_context(FeatureTap(student, [s for s, _ in pairs]))
            objective.teacher_tap = stack.enter_context(FeatureTap(teacher, [t for _, t in pairs]))
        train(
            wrapper,
            data,
            cfg.train,
            device=device,
            checkpoint=checkpoint,
            resume=resume,
            loss_fn=objective,
            progress=progress,
            desc=f"distill (teacher on {runner.runtime})",
        )
    return student.eval()
