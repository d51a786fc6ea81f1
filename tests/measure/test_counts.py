from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit import count_macs
from slimkit.measure import count_nonzero_params, count_params
from slimkit.testing import TinyConvNet, seeded_model

# MACs of one 1x28x28 example, layer by layer (3x3 convs with padding 1, two 2x2 max-pools):
SEED_CNN_MACS = (
    28 * 28 * 16 * (1 * 9)  # conv1: 16 maps of 28x28, each output reads 1 channel x 3x3
    + 14 * 14 * 32 * (16 * 9)  # conv2: 32 maps of 14x14, each output reads 16 channels x 3x3
    + (32 * 7 * 7) * 128  # fc1: 1568 features -> 128
    + 128 * 10  # fc2
)
SEED_CNN_SLIM_MACS = 28 * 28 * 8 * 9 + 14 * 14 * 16 * (8 * 9) + (16 * 7 * 7) * 64 + 64 * 10


def test_hand_computed_mac_counts_add_up() -> None:
    assert SEED_CNN_MACS == 112_896 + 903_168 + 200_704 + 1_280 == 1_218_048
    assert SEED_CNN_SLIM_MACS == 56_448 + 225_792 + 50_176 + 640 == 333_056


@pytest.mark.parametrize(
    ("name", "expected"), [("seed-cnn", SEED_CNN_MACS), ("seed-cnn-slim", SEED_CNN_SLIM_MACS)]
)
@pytest.mark.parametrize("batch", [1, 4])
def test_count_macs_of_the_seed_cnns(name: str, expected: int, batch: int) -> None:
    model = seeded_model(name)
    assert count_macs(model, torch.randn(batch, 1, 28, 28)) == expected


def test_count_macs_of_a_grouped_conv() -> None:
    model = TinyConvNet()
    # conv 1->4 and grouped 4->4 (2 groups: each output reads 2 channels) at 28x28, fc 16->10
    expected = 28 * 28 * 4 * 9 + 28 * 28 * 4 * (2 * 9) + 16 * 10
    assert count_macs(model, torch.randn(2, 1, 28, 28)) == expected


def test_count_macs_restores_training_mode() -> None:
    model = seeded_model("seed-cnn").train()
    count_macs(model, torch.randn(1, 1, 28, 28))
    assert model.training


def test_count_params_of_seed_cnn() -> None:
    expected = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (1568 * 128 + 128) + (128 * 10 + 10)
    assert count_params(seeded_model("seed-cnn")) == expected == 206_922


def test_count_nonzero_params_after_zeroing() -> None:
    model = seeded_model("seed-cnn")
    total = count_params(model)
    assert count_nonzero_params(model) == total
    with torch.no_grad():
        model.conv2.weight.zero_()
        model.fc2.weight[0, :5] = 0.0
    assert count_nonzero_params(model) == total - 32 * 16 * 9 - 5
    assert count_params(model) == total  # zeros are still parameters


def test_layer_macs_are_the_hand_computed_ones_and_add_up() -> None:
    from slimkit.measure import layer_macs

    per_layer = layer_macs(seeded_model("seed-cnn"), torch.randn(3, 1, 28, 28))
    assert per_layer == {"conv1": 112_896, "conv2": 903_168, "fc1": 200_704, "fc2": 1_280}
    grouped = layer_macs(TinyConvNet(), torch.randn(2, 1, 28, 28))
    assert sum(grouped.values()) == count_macs(TinyConvNet(), torch.randn(2, 1, 28, 28))
    resnet = seeded_model("resnet20")
    x = torch.randn(1, 1, 28, 28)
    assert sum(layer_macs(resnet, x).values()) == count_macs(resnet, x)


class _ClassTokenBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        return cls + self.q(x).mean(1, keepdim=True)


class _ClassTokenNet(nn.Module):
    """A learned token expanded and passed to a submodule (CaiT's class-attention blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, 8))
        self.block = _ClassTokenBlock()
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.token.expand(x.shape[0], -1, -1)
        return self.head(self.block(x, cls)[:, 0])


def test_macs_of_a_model_that_passes_a_parameter_view_to_a_submodule() -> None:
    model = _ClassTokenNet()
    assert count_macs(model, torch.randn(2, 5, 8)) == 5 * 8 * 8 + 8 * 3
    assert all(p.requires_grad for p in model.parameters())  # restored after counting
