"""The element-wise importance interface and the helpers the criteria share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]
Scores = dict[str, torch.Tensor]


@runtime_checkable
class ElementwiseImportance(Protocol):
    """Scores every weight of the target layers; low scores are pruned first.

    ``__call__`` returns, for each target module name, a tensor shaped like its ``weight``.
    Criteria with ``needs_data`` read ``calib`` batches (x, y); the others ignore it.
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_data(self) -> bool: ...

    def __call__(
        self,
        model: nn.Module,
        targets: Mapping[str, nn.Module],
        calib: Iterable[Batch] | None = None,
    ) -> Scores: ...


def require_calibration(name: str, calib: Iterable[Batch] | None) -> Iterable[Batch]:
    if calib is None:
        raise ValueError(
            f"importance {name!r} needs calibration data: pass calib_data (or --data on the CLI)"
        )
    return calib


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def weight_of(module: nn.Module) -> torch.Tensor:
    """The ``weight`` tensor of a Conv/Linear-like module."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor to prune")
    return weight
