"""The training loop: seeded, resumable, with hooks for pruning masks and custom losses."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._device import resolve_device
from ..data import Splits, make_loader
from ..measure import evaluate_accuracy
from . import _distributed
from ._augment import AUGMENTS, Augment, epoch_generator
from ._checkpoint import load_checkpoint, save_checkpoint
from ._config import TrainConfig

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
StepHook = Callable[[nn.Module], None]


@dataclass
class TrainResult:
    """Per-epoch history: mean training loss, validation top-1 (percent) and wall time (s).

    The wall time of an epoch covers its training steps and its validation; a resumed run keeps
    the times of the epochs done before the interruption.
    """

    losses: list[float] = field(default_factory=list)
    val_accuracies: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "losses": self.losses,
            "val_accuracies": self.val_accuracies,
            "epoch_seconds": self.epoch_seconds,
        }


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg``'s optimiser over the parameters of ``model`` that require gradients, at its
    peak learning rate (:func:`learning_rate` sets each step's)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


#: The share of the steps ``warmup-linear`` warms up over.
WARMUP = 0.05


def learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of step ``step`` (from 0) of ``total``, as ``cfg.schedule`` says.

    Example:
        >>> learning_rate(TrainConfig(lr=0.1), 50, 100)
        0.05
    """
    if cfg.schedule == "constant" or total == 0:
        return cfg.lr
    if cfg.schedule == "warmup-linear":
        warmup = max(1, round(WARMUP * total))
        if step < warmup:
            return cfg.lr * ((step + 1) / warmup)
        return cfg.lr * max(0.0, (total - step) / max(1, total - warmup))
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * step / total))


def cross_entropy_loss(label_smoothing: float = 0.0) -> LossFn:
    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y, label_smoothing=label_smoothing)

    return loss


def _check_resumed_config(
    checkpoint: str | os.PathLike[str], saved: dict[str, Any], cfg: TrainConfig
) -> None:
    """A checkpoint continues the run it was written by, possibly for more (or fewer) epochs.

    Any other change (learning rate, optimizer, augmentation, seed, ...) would silently make the
    resumed run one that nobody asked for, so it is refused.
    """
    current = cfg.to_dict()
    shared = (saved.keys() & current.keys()) - {"epochs"}
    changed = sorted(k for k in shared if saved[k] != current[k])
    if changed:
        diff = ", ".join(f"{k}={saved[k]!r} (now {current[k]!r})" for k in changed)
        raise ValueError(
            f"checkpoint {checkpoint} was written with {diff}; pass the same options to resume, "
            "or delete the checkpoint to start over"
        )


def train(
    model: nn.Module,
    splits: Splits,
    cfg: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    loss_fn: LossFn | None = None,
    after_step: StepHook | None = None,
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` in place on ``splits.train``; validate after every epoch.

    Args:
        model: the model to train (modified in place, left in eval mode).
        splits: the data; only ``train`` and ``val`` are used.
        cfg: optimiser, schedule and epochs.
        device: ``auto``, ``cpu`` or ``cuda``.
        checkpoint: file to write after every epoch (model, optimiser, epoch, history).
        resume: continue from ``checkpoint`` if it exists; the learning-rate schedule, the
            shuffling and the augmentations go on exactly as in an uninterrupted run. Only
            ``cfg.epochs`` may differ from the checkpoint's config (a cosine schedule then
            follows the new length from the step reached).
        loss_fn: ``loss_fn(model, x, y)``; cross-entropy by default (distillation passes its own).
        after_step: called after every optimiser step, e.g. to re-apply pruning masks.
        progress: show a progress bar on stderr.
        desc: the progress bar's label.

    Raises:
        ValueError: if ``resume`` finds a checkpoint written with another config (other than
            in ``epochs``).

    Example:
        >>> slimkit.train(model, splits, slimkit.TrainConfig(epochs=2))
    """
    device = resolve_device(device)
    model.to(device)
    parallel = _distributed.wrap(model, device)
    main_rank = _distributed.rank() == 0
    progress = progress and main_rank
    optimizer = make_optimizer(model, cfg)
    loss_fn = loss_fn or cross_entropy_loss(cfg.label_smoothing)
    loader = make_loader(splits.train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
    result, start_epoch = TrainResult(), 0
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        info = load_checkpoint(checkpoint, model, optimizer)
        _check_resumed_config(checkpoint, info.get("config", {}), cfg)
        start_epoch = info["epoch"]
        result = TrainResult(**info["history"])
    torch.manual_seed(cfg.seed + start_epoch)
    total_steps = cfg.epochs * len(loader)
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        result.losses.append(
            _run_epoch(
                parallel,
                loader,
                optimizer,
                cfg,
                epoch,
                total_steps,
                loss_fn,
                after_step,
                device,
                tqdm(
                    total=len(loader),
                    desc=f"{desc} {epoch + 1}/{cfg.epochs}",
                    disable=None if progress else True,
                    leave=False,
                ),
            )
        )
        result.val_accuracies.append(evaluate_accuracy(model, splits.val, device=device))
        result.epoch_seconds.append(round(time.perf_counter() - started, 3))
        if progress:
            tqdm.write(
                f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {result.losses[-1]:.4f}, "
                f"val top-1 {result.val_accuracies[-1]:.2f}%",
                file=sys.stderr,
            )
        if checkpoint is not None and main_rank:
            info = {"epoch": epoch + 1, "config": cfg.to_dict(), "history": result.to_dict()}
            save_checkpoint(checkpoint, model, optimizer, info)
    model.eval()
    return result


def _run_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    epoch: int,
    total_steps: int,
    loss_fn: LossFn,
    after_step: StepHook | None,
    device: torch.device,
    bar: Any,
) -> float:
    model.train()
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    augment: Augment = AUGMENTS.get(cfg.augment)
    generator = epoch_generator(cfg.seed, epoch)
    running, count = 0.0, 0
    with bar:
        for step, (x_all, y_all) in enumerate(loader, start=epoch * len(loader)):
            # Augment the global batch before sharding: every rank then trains on its slice of
            # the same views a single process would see.
            x, y = _distributed.shard((augment(x_all, generator), y_all))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step, total_steps)
            loss = loss_fn(model, x.to(device), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
            if after_step is not None:
                after_step(model)
            running += float(loss.detach()) * len(y)
            count += len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{running / count:.4f}", refresh=False)
    return running / max(count, 1)
