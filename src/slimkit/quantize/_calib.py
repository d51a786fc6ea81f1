"""Calibration data: whatever the caller passes, turned into a short list of input batches."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .._attrs import ARCH_ATTR
from ..data import Splits, make_loader
from ..errors import DataError

CALIB_SEED = 1234


def _inputs(item: Any) -> torch.Tensor:
    x = item[0] if isinstance(item, tuple | list) else item
    if not isinstance(x, torch.Tensor):
        raise DataError(
            f"calibration batches must be tensors or (inputs, labels) pairs, got {type(x).__name__}"
        )
    return x


def _source(data: Any, batch_size: int) -> Iterable[Any]:
    if isinstance(data, Splits):
        loader: Iterable[Any] = make_loader(
            data.train, batch_size=batch_size, shuffle=True, seed=CALIB_SEED
        )
        return loader
    if isinstance(data, torch.Tensor):
        return torch.split(data, batch_size) if data.dim() > 0 else [data]
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        loader = make_loader(data, batch_size=batch_size, shuffle=True, seed=CALIB_SEED)
        return loader
    if isinstance(data, Iterable):
        return data
    raise DataError(
        f"calib_data must be slimkit Splits, a Dataset, a tensor or an iterable of batches, "
        f"got {type(data).__name__}"
    )


def _check_shape(x: torch.Tensor, model: nn.Module) -> None:
    if x.dim() < 2 or x.shape[0] == 0:
        raise DataError(f"calibration batch has shape {list(x.shape)}; expected [batch, ...]")
    channels = getattr(model, ARCH_ATTR, {}).get("kwargs", {}).get("in_channels")
    if channels is not None and x.dim() == 4 and x.shape[1] != channels:
        raise DataError(
            f"calibration batch has shape {list(x.shape)} but the model takes {channels}-channel "
            "images [batch, channels, H, W]; pass data of that shape"
        )


def calibration_batches(
    data: Any, model: nn.Module, *, batches: int, batch_size: int
) -> list[torch.Tensor]:
    """Up to ``batches`` input batches from ``data``, checked against the model's input.

    Raises:
        DataError: if the data is missing, empty, of the wrong type or of the wrong shape.
    """
    if data is None:
        raise DataError("this scheme needs calibration data: pass calib_data=splits (or batches)")
    out = [_inputs(item).float() for item in islice(iter(_source(data, batch_size)), batches)]
    if not out:
        raise DataError("calibration data is empty; pass at least one batch of inputs")
    for x in out:
        _check_shape(x, model)
    return out


@torch.no_grad()
def run_batches(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Forward every batch, turning shape errors into a :class:`DataError`."""
    for x in batches:
        try:
            model(x)
        except RuntimeError as err:
            raise DataError(
                f"calibration batch of shape {list(x.shape)} does not fit the model: {err}"
            ) from None
