"""The number a compression budget is stated in: top-1 accuracy, or the user's own metric."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._imports import import_function
from ..errors import DataError
from ._accuracy import evaluate_accuracy

MetricFn = Callable[[nn.Module, Any], float]


def resolve_metric(spec: str | MetricFn | None) -> MetricFn | None:
    """A metric function from a callable or a ``package.module:function`` name (imported)."""
    if spec is None or callable(spec):
        return spec
    module_name, sep, name = str(spec).partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"a metric is a callable or 'package.module:function', got {spec!r}")
    metric: MetricFn = import_function(str(spec), "metric", ValueError)
    return metric


def metric_name(fn: MetricFn | None) -> str:
    """``top-1`` for the default, else ``module:qualname`` of the user's function."""
    if fn is None:
        return "top-1"
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


class Metric:
    """Scores a model on a dataset; :meth:`drop` says how much worse a score is than another.

    Args:
        fn: ``fn(model, dataset) -> float``; ``None`` is top-1 accuracy in percent.
        lower_is_better: the metric is a loss or an error (a drop is then an increase).
    """

    def __init__(self, fn: MetricFn | None = None, *, lower_is_better: bool = False) -> None:
        if fn is None and lower_is_better:
            raise ValueError("lower_is_better needs a metric: top-1 accuracy is higher-is-better")
        self.fn = fn
        self.lower_is_better = lower_is_better
        self.name = metric_name(fn)

    @property
    def is_top1(self) -> bool:
        return self.fn is None

    def __call__(self, model: nn.Module, data: Any, *, device: str | torch.device = "cpu") -> float:
        if self.fn is None:
            return evaluate_accuracy(model, data, device=device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                value = self.fn(model, data)
        finally:
            model.train(was_training)
        if isinstance(value, torch.Tensor):
            value = value.item()
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise DataError(f"metric {self.name} returned {value!r}; it must return a finite float")
        return float(value)

    def drop(self, baseline: float, value: float) -> float:
        """How much worse ``value`` is than ``baseline`` (negative: better)."""
        return value - baseline if self.lower_is_better else baseline - value

    def format(self, value: float) -> str:
        """``91.30%`` for top-1, else the value with its metric's name."""
        return f"top-1 {value:.2f}%" if self.fn is None else f"{self.name} {value:.4g}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lower_is_better": self.lower_is_better}
