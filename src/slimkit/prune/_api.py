"""The pruning verb: one entry point, dispatched on the config's type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data import Splits
from ..train import TrainConfig
from ..train._loop import LossFn
from ._config import UnstructuredConfig
from ._unstructured import prune_unstructured

PruneHandler = Callable[..., nn.Module]
_HANDLERS: dict[type, PruneHandler] = {UnstructuredConfig: prune_unstructured}


def register_prune_handler(config_type: type, handler: PruneHandler) -> None:
    """Make :func:`prune` accept ``config_type``; ``handler`` has :func:`prune`'s signature."""
    _HANDLERS[config_type] = handler


def prune(
    model: nn.Module,
    cfg: Any,
    *,
    data: Splits | None = None,
    train: TrainConfig | None = None,
    device: str | torch.device = "cpu",
    inplace: bool = False,
    progress: bool = True,
    loss_fn: LossFn | None = None,
    **options: Any,
) -> nn.Module:
    """Prune ``model`` as ``cfg`` says and return the pruned model.

    The input model is left untouched unless ``inplace=True``.

    Args:
        model: the trained model.
        cfg: a pruning config, e.g. :class:`UnstructuredConfig`.
        data: training data for calibration and fine-tuning (validation data is not read).
        train: the fine-tuning after pruning (its epochs spread over gradual steps); None
            skips it.
        device: ``auto``, ``cpu`` or ``cuda``.
        inplace: modify ``model`` itself.
        progress: show progress bars.
        loss_fn: the fine-tuning loss, ``loss_fn(model, x, y)`` (cross-entropy by default;
            :func:`slimkit.distill.kd_loss` distils the unpruned model instead).
        **options: method-specific inputs, e.g. ``example_inputs=`` and ``calib_data=`` for
            :class:`~slimkit.StructuredConfig`.

    Example:
        >>> cfg = slimkit.UnstructuredConfig(sparsity=0.9, importance="taylor")
        >>> small = slimkit.prune(model, cfg, data=splits, train=slimkit.TrainConfig(epochs=1))
        >>> cfg = slimkit.StructuredConfig(target_macs=0.5, round_to=8)
        >>> smaller = slimkit.prune(model, cfg, example_inputs=torch.randn(1, 1, 28, 28))
    """
    handler = _HANDLERS.get(type(cfg))
    if handler is None:
        known = ", ".join(t.__name__ for t in _HANDLERS)
        raise TypeError(f"prune() takes one of {known}, got {type(cfg).__name__}")
    return handler(
        model,
        cfg,
        data=data,
        train=train,
        device=device,
        inplace=inplace,
        progress=progress,
        loss_fn=loss_fn,
        **options,
    )
