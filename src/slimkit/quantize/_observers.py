"""Activation observers: they watch calibration batches and choose a uint8 range.

``minmax`` keeps the exact running extremes. ``percentile`` and ``mse`` keep the exact extremes
plus a uniform random sample of the values seen (bottom-k sampling, seeded, so results are
repeatable; with fewer values than the sample size every value is kept and the statistics are
exact), from which they pick a clipping range.
"""

from __future__ import annotations

import torch

from .._registry import Registry
from ._qmath import affine_qparams, fake_quant_act

SAMPLE_SIZE = 1 << 18


class Observer:
    """Base observer: tracks the exact min and max of everything it has seen."""

    def __init__(self) -> None:
        self.min = float("inf")
        self.max = float("-inf")

    @property
    def seen(self) -> bool:
        return self.min <= self.max

    def update(self, x: torch.Tensor) -> None:
        """Record one batch of activations."""
        if x.numel() == 0:
            return
        x = x.detach().float()
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    def range(self) -> tuple[float, float]:
        """The float range ``(lo, hi)`` to quantize."""
        return self.min, self.max

    def qparams(self) -> tuple[float, int]:
        """uint8 scale and zero point.

        Raises:
            RuntimeError: if no batch was observed (a branch calibration never reached).
        """
        if not self.seen:
            raise RuntimeError("observer saw no data; the calibration never reached this tensor")
        return affine_qparams(*self.range())


class MinMaxObserver(Observer):
    """Range = exact min and max over all calibration batches."""


class _SampleObserver(Observer):
    def __init__(self, sample_size: int = SAMPLE_SIZE, seed: int = 0) -> None:
        super().__init__()
        self.sample_size = sample_size
        self._generator = torch.Generator().manual_seed(seed)
        self._values = torch.empty(0)
        self._keys = torch.empty(0)

    def update(self, x: torch.Tensor) -> None:
        super().update(x)
        flat = x.detach().float().reshape(-1).cpu()
        keys = torch.rand(flat.numel(), generator=self._generator)
        values = torch.cat([self._values, flat])
        keys = torch.cat([self._keys, keys])
        if values.numel() > self.sample_size:
            keep = torch.topk(keys, self.sample_size, largest=False).indices
            values, keys = values[keep], keys[keep]
        self._values, self._keys = values, keys

    @property
    def sample(self) -> torch.Tensor:
        return self._values


class PercentileObserver(_SampleObserver):
    """Range = the ``[100 - p, p]`` percentiles, which ignores rare outliers.

    Args:
        percentile: the upper percentile p, e.g. 99.99.
    """

    def __init__(self, percentile: float = 99.99, **kwargs: int) -> None:
        super().__init__(**kwargs)
        self.percentile = percentile

    def range(self) -> tuple[float, float]:
        q = torch.tensor([1.0 - self.percentile / 100.0, self.percentile / 100.0])
        lo, hi = torch.quantile(self.sample.double(), q.double()).tolist()
        return float(lo), float(hi)


class MSEObserver(_SampleObserver):
    """Range = the shrunk ends that minimise the quantization error on the sample.

    Each end is scaled by factors in ``[0.3, 1]`` in turn (upper end first, then lower), keeping
    the one with the smallest mean squared error between the sample and its uint8 fake-quant.
    """

    CANDIDATES = 48

    def _error(self, lo: float, hi: float) -> float:
        scale, zero_point = affine_qparams(lo, hi)
        approx = fake_quant_act(self.sample, torch.tensor(scale), torch.tensor(zero_point))
        return float((approx - self.sample).pow(2).mean())

    def range(self) -> tuple[float, float]:
        alphas = torch.linspace(0.3, 1.0, self.CANDIDATES).tolist()
        hi = min((self.max * a for a in alphas), key=lambda h: (self._error(self.min, h), -h))
        lo = min((self.min * a for a in alphas), key=lambda low: (self._error(low, hi), low))
        return lo, hi


OBSERVER_TYPES: Registry[type[Observer]] = Registry("observer")
OBSERVER_TYPES.register("minmax", MinMaxObserver)
OBSERVER_TYPES.register("percentile", PercentileObserver)
OBSERVER_TYPES.register("mse", MSEObserver)


def make_observer(name: str, percentile: float = 99.99) -> Observer:
    """A fresh observer by name (``minmax``, ``percentile``, ``mse``)."""
    cls = OBSERVER_TYPES.get(name)
    return cls(percentile=percentile) if cls is PercentileObserver else cls()
