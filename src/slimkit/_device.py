"""Device selection shared by the library and the CLI."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda[:N]`` into a :class:`torch.device`.

    Raises:
        ValueError: if the name is unknown or CUDA is requested but not available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was requested but CUDA is not available on this machine; "
                "use --device cpu or --device auto"
            )
        return torch.device(device)
    raise ValueError(f"unknown device {device!r}; choose one of auto, cpu, cuda, cuda:N")
