"""A small trained model and data for compress tests (seed-cnn-slim, 2 epochs on a slice)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

import slimkit
from slimkit import Splits
from slimkit.testing import fashion_mnist_slice, seeded_model

LIMITS = {"limit_train": 1024, "limit_eval": 512}


@pytest.fixture(scope="session")
def small_splits() -> Splits:
    return fashion_mnist_slice(**LIMITS)


@pytest.fixture(scope="session")
def trained_artifact(small_splits: Splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = seeded_model("seed-cnn-slim")
    slimkit.train(model, small_splits, slimkit.TrainConfig(epochs=3, lr=3e-3), progress=False)
    return slimkit.save(model, tmp_path_factory.mktemp("compress") / "model.safetensors")


@pytest.fixture()
def trained(trained_artifact: Path) -> nn.Module:
    return slimkit.load(trained_artifact)
