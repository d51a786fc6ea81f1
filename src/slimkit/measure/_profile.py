"""One call that measures everything a compression decision needs: accuracy, size, MACs, speed."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._device import resolve_device
from ..data import Splits
from ._accuracy import evaluate_accuracy
from ._counts import count_macs, count_nonzero_params, count_params
from ._latency import measure_latency

#: How a profile is shown: (key, label, format) per row, in display order.
PROFILE_ROWS = (
    ("test_accuracy", "test top-1 (%)", "{:.2f}"),
    ("val_accuracy", "val top-1 (%)", "{:.2f}"),
    ("params", "parameters", "{:,}"),
    ("nonzero_params", "non-zero parameters", "{:,}"),
    ("macs", "MACs", "{:,}"),
    ("bytes", "bytes on disk", "{:,}"),
    ("latency_ms_b1", "latency b1 (ms)", "{:.3f}"),
    ("latency_ms_b64", "latency b64 (ms)", "{:.3f}"),
)


@dataclass(frozen=True)
class Profile:
    """Measurements of one model. Accuracies are percentages; latencies are medians in ms."""

    test_accuracy: float | None
    val_accuracy: float | None
    params: int
    nonzero_params: int
    macs: int
    bytes: int | None
    latency_ms_b1: float
    latency_ms_b64: float
    threads: int
    device: str
    backend: str = "torch"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile(
    model: nn.Module,
    splits: Splits,
    *,
    artifact: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    accuracy: bool = True,
    latency_repeats: int = 10,
) -> Profile:
    """Measure a model on a dataset.

    Args:
        model: the model to measure (not modified; evaluated in eval mode).
        splits: the data; test and validation accuracy are measured on it.
        artifact: the saved file of this model, whose size on disk is reported as ``bytes``.
        device: where to run (latency is the device's).
        threads: CPU threads for the latency measurement (default: torch's current setting).
        accuracy: measure accuracies (set False for a fast size/speed-only profile).
        latency_repeats: timed repeats per batch size; the median is reported.

    Example:
        >>> p = slimkit.profile(model, splits)
        >>> p.test_accuracy, p.latency_ms_b64
    """
    device = resolve_device(device)
    threads = threads or torch.get_num_threads()
    model = model.to(device).eval()
    example = splits.example_input(64).to(device)
    return Profile(
        test_accuracy=evaluate_accuracy(model, splits.test, device=device) if accuracy else None,
        val_accuracy=evaluate_accuracy(model, splits.val, device=device) if accuracy else None,
        params=count_params(model),
        nonzero_params=count_nonzero_params(model),
        macs=count_macs(model, example[:1]),
        bytes=Path(artifact).stat().st_size if artifact is not None else None,
        latency_ms_b1=measure_latency(model, example[:1], threads=threads, repeats=latency_repeats),
        latency_ms_b64=measure_latency(model, example, threads=threads, repeats=latency_repeats),
        threads=threads,
        device=str(device),
    )
