"""Data-parallel training with torch.distributed (``torchrun``): gloo on CPU, NCCL on GPU.

Every rank reads the same shuffled global batches and trains on its own slice of each one;
DistributedDataParallel averages the gradients, so a step equals the single-process step on
the whole batch (up to float summation order, and except for BatchNorm statistics, which each
rank computes on its slice).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    return torch.distributed.get_rank() if is_distributed() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if is_distributed() else 1


def init_from_env(device: torch.device) -> bool:
    """Join the process group ``torchrun`` describes in the environment (if it does).

    Returns True when this process is one of several ranks.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend)
    return True


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` inside DistributedDataParallel when running with several ranks."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type != "cuda":
        return DistributedDataParallel(model)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(model, device_ids=[index])


def shard(batch: tuple[Any, Any]) -> tuple[Any, Any]:
    """This rank's slice of a global batch (every rank sees the same global batches)."""
    if not is_distributed():
        return batch
    x, y = batch
    r, n = rank(), world_size()
    return x[r::n], y[r::n]
