"""Train / validation / test splits and the fast batch iterator used for in-memory tensors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..errors import DataError

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Splits:
    """A dataset split three ways.

    ``val`` is carved out of the training data deterministically; pruning decisions and threshold
    tuning use ``val`` only, and ``test`` is used once, for the final report.

    Attributes:
        name: the dataset's name, recorded in artifacts.
        train: training examples (features, integer label).
        val: validation examples.
        test: held-out test examples.
        num_classes: number of classes.
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        meta: preprocessing facts a deployment needs (normalization mean/std, class names).
    """

    name: str
    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    num_classes: int
    input_shape: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description, stored in artifacts' provenance."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},  # type: ignore[arg-type]
            **self.meta,
        }

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        """A batch of real validation inputs, for tracing and latency measurement."""
        x, _ = next(iter(make_loader(self.val, batch_size=batch_size)))
        if x.shape[0] < batch_size:  # a tiny validation split: repeat to the requested size
            x = x.repeat(math.ceil(batch_size / x.shape[0]), *([1] * (x.dim() - 1)))[:batch_size]
        return torch.as_tensor(x)


def split_train_val(
    dataset: Dataset[Any], val_size: int, seed: int = 0
) -> tuple[Subset[Any], Subset[Any]]:
    """Split ``dataset`` into (train, val) with a fixed permutation independent of training seeds."""
    n = len(dataset)  # type: ignore[arg-type]
    if not 0 < val_size < n:
        raise DataError(f"validation size must be between 1 and {n - 1}, got {val_size}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[val_size:].tolist()), Subset(dataset, order[:val_size].tolist())


class TensorBatches:
    """Batches of an in-memory (features, labels) pair without DataLoader's per-item overhead.

    Shuffling depends only on ``seed`` and the epoch set with :meth:`set_epoch`, so a resumed
    training run sees the same batches as an uninterrupted one.
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.y)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order: torch.Tensor | None = torch.randperm(n, generator=generator)
        else:
            order = None
        for start in range(0, n, self.batch_size):
            if order is None:
                yield (
                    self.x[start : start + self.batch_size],
                    self.y[start : start + self.batch_size],
                )
            else:
                index = order[start : start + self.batch_size]
                yield self.x[index], self.y[index]


def as_tensors(dataset: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Return (features, labels) if ``dataset`` is an in-memory tensor dataset or a subset of one."""
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors[0], dataset.tensors[1]
    if isinstance(dataset, Subset):
        inner = as_tensors(dataset.dataset)
        if inner is not None:
            index = torch.as_tensor(dataset.indices)
            return inner[0][index], inner[1][index]
    return None


def make_loader(
    dataset: Dataset[Any], *, batch_size: int = 128, shuffle: bool = False, seed: int = 0
) -> Any:
    """An iterable of (x, y) batches; in-memory tensors take a fast path, others a DataLoader."""
    tensors = as_tensors(dataset)
    if tensors is not None:
        return TensorBatches(*tensors, batch_size=batch_size, shuffle=shuffle, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def take(dataset: Dataset[Any], count: int | None) -> Dataset[Any]:
    """The first ``count`` examples of ``dataset`` (all of them when ``count`` is None)."""
    if count is None or count >= len(dataset):  # type: ignore[arg-type]
        return dataset
    return Subset(dataset, list(range(count)))
