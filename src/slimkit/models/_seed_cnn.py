"""The reference CNN of the compression tutorial slimkit starts from, and its hand-slimmed twin."""

from __future__ import annotations

import torch
from torch import nn


class SeedCNN(nn.Module):
    """conv3x3(c1) → ReLU → maxpool2 → conv3x3(c2) → ReLU → maxpool2 → FC(hidden) → ReLU → FC.

    Args:
        in_channels: channels of the input images.
        num_classes: number of output logits.
        image_size: height (= width) of the input images; sets the width of the first FC layer.
        channels: output channels of the two convolutions.
        hidden: width of the hidden fully connected layer.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 128,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        feature_size = image_size // 4
        self.fc1 = nn.Linear(c2 * feature_size * feature_size, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        logits: torch.Tensor = self.fc2(torch.relu(self.fc1(x)))
        return logits


def seed_cnn(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> SeedCNN:
    return SeedCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def seed_cnn_slim(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> SeedCNN:
    return SeedCNN(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        channels=(8, 16),
        hidden=64,
    )
