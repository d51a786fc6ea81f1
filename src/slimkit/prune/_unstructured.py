"""Unstructured pruning: zero the least important weights, globally or per layer."""

from __future__ import annotations

import copy
from itertools import islice
from typing import Any

import torch
from torch import nn

from .._device import resolve_device
from ..data import Splits, make_loader
from ..importance import elementwise_criterion
from ..importance._base import weight_of
from ..train import TrainConfig
from ..train import train as run_training
from ..train._loop import LossFn
from ._config import AGP, Global, PerLayer, UnstructuredConfig
from ._targets import Masks, prunable_layers, sparsity_of


def _lowest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of the ``count`` lowest entries (exactly ``count``, ties broken by index)."""
    flat = scores.reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if count > 0:
        mask[torch.argsort(flat, stable=True)[:count]] = True
    return mask.reshape(scores.shape)


def _prune_masks(
    scores: dict[str, torch.Tensor], sparsity: float, scope: Global | PerLayer
) -> dict[str, torch.Tensor]:
    """Masks (True = keep) giving exactly round(sparsity · n) zeros per scope."""
    if isinstance(scope, Global):
        flat = torch.cat([s.reshape(-1) for s in scores.values()])
        drop = _lowest(flat, round(sparsity * flat.numel()))
        masks, offset = {}, 0
        for name, s in scores.items():
            masks[name] = ~drop[offset : offset + s.numel()].reshape(s.shape)
            offset += s.numel()
        return masks
    return {
        name: ~_lowest(s, round(scope.overrides.get(name, sparsity) * s.numel()))
        for name, s in scores.items()
    }


@torch.no_grad()
def prune_step(
    model: nn.Module,
    cfg: UnstructuredConfig,
    sparsity: float,
    calib: Any = None,
) -> Masks:
    """Score the target weights and zero the lowest ones in place; return the masks.

    Weights that are already zero stay pruned: they are ranked below every live weight.
    """
    targets = prunable_layers(model, cfg.exclude)
    criterion = elementwise_criterion(cfg.importance)
    with torch.enable_grad():
        scores = criterion(model, targets, calib)
    for name, module in targets.items():
        scores[name] = torch.where(weight_of(module) == 0, -1.0, scores[name].float())
    masks = _prune_masks(scores, sparsity, cfg.scope)
    for name, module in targets.items():
        weight_of(module).mul_(masks[name])
    return Masks(masks)


def _calibration(cfg: UnstructuredConfig, data: Splits | None) -> Any:
    if data is None:
        return None
    loader = make_loader(data.train, batch_size=128, shuffle=True, seed=1234)
    return list(islice(iter(loader), cfg.calib_batches))


def _epochs_per_step(total: int, steps: int) -> list[int]:
    return [total // steps + (1 if i < total % steps else 0) for i in range(steps)]


def prune_unstructured(
    model: nn.Module,
    cfg: UnstructuredConfig,
    *,
    data: Splits | None = None,
    train: TrainConfig | None = None,
    device: str | torch.device = "cpu",
    inplace: bool = False,
    progress: bool = True,
    loss_fn: LossFn | None = None,
) -> nn.Module:
    """Prune ``model`` to ``cfg.sparsity`` and fine-tune on ``train`` with pruned weights
    held at zero.

    With :class:`AGP` the fine-tuning epochs are spread over the pruning steps. ``loss_fn``
    is the fine-tuning loss (cross-entropy by default).
    """
    device = resolve_device(device)
    if not inplace:
        model = copy.deepcopy(model)
    model.to(device)
    criterion = elementwise_criterion(cfg.importance)
    if (criterion.needs_data or (train and train.epochs)) and data is None:
        raise ValueError(f"importance {criterion.name!r} and fine-tuning need data=Splits(...)")
    calib = _calibration(cfg, data) if criterion.needs_data else None
    if isinstance(cfg.schedule, AGP):
        steps = cfg.schedule.sparsities(cfg.sparsity)
    else:
        steps = [cfg.sparsity]
    epochs = _epochs_per_step(train.epochs if train else 0, len(steps))
    for index, (sparsity, step_epochs) in enumerate(zip(steps, epochs, strict=True)):
        masks = prune_step(model, cfg, sparsity, calib)
        if train is not None and step_epochs > 0 and data is not None:
            step_cfg = TrainConfig(**{**train.to_dict(), "epochs": step_epochs})
            run_training(
                model,
                data,
                step_cfg,
                device=device,
                after_step=masks.apply,
                loss_fn=loss_fn,
                progress=progress,
                desc=f"fine-tune {index + 1}/{len(steps)}",
            )
    model.eval()
    return model


def weight_sparsity(model: nn.Module, exclude: tuple[str, ...] = ()) -> float:
    """Fraction of zeros among the Conv/Linear weights of ``model`` (minus ``exclude``)."""
    return sparsity_of(prunable_layers(model, exclude))
