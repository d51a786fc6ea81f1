"""A briefly trained model on a real Fashion-MNIST slice, shared by the quantization tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimkit
from slimkit import DataError, Splits
from slimkit.testing import fashion_mnist_slice


@pytest.fixture(scope="session")
def qdata() -> Splits:
    """6,000 training and 1,000 validation / test examples of real Fashion-MNIST."""
    try:
        return fashion_mnist_slice(limit_train=6000, limit_eval=1000)
    except DataError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def trained(qdata: Splits) -> nn.Module:
    """seed-cnn-slim after one epoch (about 75% test top-1): real, non-random activations."""
    torch.manual_seed(0)
    model = slimkit.create_model("seed-cnn-slim")
    slimkit.train(model, qdata, slimkit.TrainConfig(epochs=1, lr=3e-3), progress=False)
    return model.eval()


@pytest.fixture(scope="session")
def test_inputs(qdata: Splits) -> torch.Tensor:
    return torch.stack([qdata.test[i][0] for i in range(len(qdata.test))])  # type: ignore[arg-type]
