"""Tiny deterministic models and data for testing slimkit, and plugins built on it.

Everything here is small enough for a unit test on a laptop CPU and seeded, so two calls with
the same arguments give identical weights and data.

Example:
    >>> from slimkit.testing import TinyConvNet, random_splits
    >>> model, splits = TinyConvNet(seed=0), random_splits(train=32)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..data import Splits, load_data
from ..errors import DataError
from ..models import create_model
from ._structured import (
    ConcatNet,
    check_structured,
    exactness_gap,
    torchvision_case,
    zero_units_,
)
from ._text import (
    TINY_SENTENCES,
    tiny_bert_dir,
    tiny_sentence_encoder,
    tiny_text_corpus,
    tiny_text_folder,
)

__all__ = [
    "MISSING_DATA_HINT",
    "TINY_SENTENCES",
    "ConcatNet",
    "ConstantClassifier",
    "TinyConvNet",
    "check_structured",
    "exactness_gap",
    "fashion_mnist_slice",
    "fixed_init_",
    "random_splits",
    "seeded_model",
    "tiny_bert_dir",
    "tiny_sentence_encoder",
    "tiny_text_corpus",
    "tiny_text_folder",
    "torchvision_case",
    "zero_units_",
]

#: Appended to data errors raised by the fixtures: how a developer gets the real dataset.
MISSING_DATA_HINT = "in a slimkit checkout run `make test`, which installs Fashion-MNIST first"


@torch.no_grad()
def fixed_init_(model: nn.Module, *, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Overwrite every parameter with seeded uniform values in ``[-scale, scale)``, in place.

    The values do not depend on the global RNG or on the layer types' default initialisers,
    so they stay the same across torch versions. Exact zeros are practically impossible.
    """
    generator = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        values = torch.rand(param.shape, generator=generator, dtype=torch.float64)
        param.copy_(((values * 2 - 1) * scale).to(param.dtype))
    return model


class TinyConvNet(nn.Module):
    """conv3x3 (1→4) → ReLU → grouped conv3x3 (4→4, groups=2) → ReLU → 2x2 pool → Linear.

    Covers the layer types the pruning and importance code special-cases (plain and grouped
    convolutions, a linear head) with 286 parameters.

    Args:
        in_channels: channels of the input images.
        num_classes: number of output logits.
        seed: seed of :func:`fixed_init_`.
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, num_classes)
        fixed_init_(self, seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.grouped(torch.relu(self.conv(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class ConstantClassifier(nn.Module):
    """Predicts ``label`` for every input: its accuracy is the frequency of that label."""

    def __init__(self, label: int, num_classes: int = 10) -> None:
        super().__init__()
        self.label = label
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], self.num_classes, device=x.device)
        logits[:, self.label] = 1.0
        return logits


def seeded_model(name: str, *, seed: int = 0, **kwargs: Any) -> nn.Module:
    """:func:`slimkit.create_model` with a fixed seed, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_model(name, **kwargs)


def random_splits(
    *,
    train: int = 64,
    val: int = 32,
    test: int = 32,
    input_shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    seed: int = 0,
) -> Splits:
    """Gaussian inputs with uniform random labels: for code paths where accuracy is irrelevant."""
    generator = torch.Generator().manual_seed(seed)

    def part(n: int) -> TensorDataset:
        x = torch.randn(n, *input_shape, generator=generator)
        return TensorDataset(x, torch.randint(num_classes, (n,), generator=generator))

    return Splits("random", part(train), part(val), part(test), num_classes, input_shape)


def fashion_mnist_slice(
    *, limit_train: int = 512, limit_eval: int = 256, data_dir: str | Path | None = None
) -> Splits:
    """The first examples of the real Fashion-MNIST splits (the fixed train/val split).

    Raises:
        DataError: if the dataset is not installed; the message says how to install it.
    """
    try:
        return load_data(
            "fashion-mnist", data_dir=data_dir, limit_train=limit_train, limit_eval=limit_eval
        )
    except DataError as err:
        raise DataError(f"{err}; {MISSING_DATA_HINT}") from None
