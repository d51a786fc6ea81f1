"""Top-1 accuracy of a classifier over a dataset."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .._device import resolve_device
from ..data import make_loader


@torch.no_grad()
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
    device = resolve_device(device)
    was_training = model.training
    home = next((p.device for p in model.parameters()), device)
    model.to(device).eval()
    correct = total = 0
    try:
        for x, y in make_loader(dataset, batch_size=batch_size):
            logits = model(x.to(device))
            correct += int((logits.argmax(1).cpu() == y).sum())
            total += len(y)
    finally:
        model.to(home).train(was_training)
    return 100.0 * correct / max(total, 1)
