"""Structure slimming: a uniformly narrower copy of a trained model, warm or freshly initialised."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data import Splits
from ..importance import GroupImportance
from ..prune import StructuredConfig, prune

INITS = ("warm", "scratch")
DEFAULT_MAX_RATIO = 0.9


@torch.no_grad()
def reinitialise_(model: nn.Module) -> nn.Module:
    """Call ``reset_parameters()`` on every module that has one (batch norm also resets its
    running statistics), in place. Custom initialisations a model applies in its constructor
    are not repeated: layers get PyTorch's defaults."""
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    return model


def slim(
    model: nn.Module,
    width: float = 0.5,
    *,
    example_inputs: Any,
    data: Splits | None = None,
    init: str = "warm",
    importance: str | GroupImportance = "l2",
    round_to: int = 1,
) -> nn.Module:
    """A copy of ``model`` with every prunable channel group narrowed to ``width``.

    Structured pruning removes ``1 - width`` of the units of every group of coupled channels
    (rounded so that ``ceil(width · n)`` stay, then to multiples of ``round_to``); layers whose
    outputs reach the model output, such as the classifier, keep their width. ``warm`` keeps
    the most important channels with their trained weights; ``scratch`` keeps the narrower
    architecture only and re-initialises every parameter (see :func:`reinitialise_`). Either
    way, train the result next, e.g. with :func:`slimkit.distill` from ``model``.

    The result carries the structure spec that :func:`slimkit.save` stores, so
    :func:`slimkit.load` rebuilds it.

    Args:
        model: the trained model (not modified).
        width: fraction of each group's channels to keep, in (0, 1].
        example_inputs: a batch to trace the model with, e.g. ``torch.randn(1, 1, 28, 28)``.
        data: training batches for data-driven ``importance`` criteria.
        init: ``warm`` or ``scratch``.
        importance: the group criterion that picks the channels kept: a name in
            :data:`slimkit.importance.GROUP` (``l2``, ``l1``, ``bn-scale``, ``taylor``,
            ``activation``, ``apoz``, ``random``) or a criterion object.
        round_to: keep widths multiples of this.

    Raises:
        ValueError: for a width outside (0, 1] or an unknown ``init``.
        PruningTargetError: if no channel group of the model can be narrowed.

    Example:
        >>> half = slimkit.slim(model, 0.5, example_inputs=torch.randn(1, 1, 28, 28))
        >>> slimkit.distill(half, model, splits, slimkit.DistillConfig())
    """
    if not 0.0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1] (0.5 = half the channels), got {width}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    ratio = round(1.0 - width, 9)  # 1 - 0.9 = 0.0999…: floor(ratio · n) would keep one too many
    cfg = StructuredConfig(
        ratio=ratio,
        importance=importance,
        round_to=round_to,
        max_ratio=max(DEFAULT_MAX_RATIO, ratio),
    )
    slimmed = prune(model, cfg, data=data, example_inputs=example_inputs, progress=False)
    if init == "scratch":
        reinitialise_(slimmed)
    return slimmed.eval()
