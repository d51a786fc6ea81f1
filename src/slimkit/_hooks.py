"""Running a model once with forward hooks, for measurements that read every layer's output."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

Hook = Callable[[nn.Module, Any, Any], None]


@torch.no_grad()
def run_with_hooks(
    model: nn.Module, example: torch.Tensor, hooks: Iterable[tuple[nn.Module, Hook]]
) -> None:
    """One eval-mode forward pass of ``model`` with each ``(module, hook)`` attached.

    The hooks are removed and the model's training mode restored afterwards, also on error.
    """
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
