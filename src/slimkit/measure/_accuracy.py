"""Top-1 accuracy of a classifier over a dataset."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .._device import resolve_device
from ..data import make_loader


@torch.no_grad()
def correct_mask(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> torch.Tensor:
    """Whether ``model``'s top-1 prediction is right, per example of ``dataset`` (in order).

    The model is evaluated in eval mode on ``device``; its mode, and the device it was on, are
    restored.
    """
    device = resolve_device(device)
    was_training = model.training
    home = next((p.device for p in model.parameters()), device)
    model.to(device).eval()
    hits = []
    try:
        for x, y in make_loader(dataset, batch_size=batch_size):
            hits.append(model(x.to(device)).argmax(1).cpu() == y)
    finally:
        model.to(home).train(was_training)
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)


def evaluate_accuracy(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> float:
    """Top-1 accuracy in percent, computed on ``device``.

    The model is evaluated in eval mode; its mode, and the device it was on, are restored.
    """
    hits = correct_mask(model, dataset, device=device, batch_size=batch_size)
    return 100.0 * float(hits.sum()) / max(len(hits), 1)


def paired_drop(reference: torch.Tensor, candidate: torch.Tensor) -> tuple[float, float]:
    """Accuracy drop (points) from ``reference`` to ``candidate`` on the same examples, and its
    standard error.

    Both are :func:`correct_mask` results. The error is that of the mean of the per-example
    differences (the paired test): it counts only the examples on which the two models differ,
    so it is much smaller than the error of either accuracy alone.
    """
    if reference.shape != candidate.shape or reference.numel() < 2:
        raise ValueError("paired_drop needs two correctness masks over the same 2+ examples")
    diff = reference.double() - candidate.double()
    return 100.0 * float(diff.mean()), 100.0 * float(diff.std() / diff.numel() ** 0.5)
