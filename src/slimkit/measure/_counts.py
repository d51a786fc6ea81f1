"""Parameter, non-zero and MAC counts."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared parameter counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_nonzero_params(model: nn.Module) -> int:
    """Number of parameters that are not exactly zero."""
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example_input``, per example.

    Counted from the aten operations that actually execute (convolutions, matrix products,
    attention), so branches not taken and reshapes cost nothing and any architecture works.
    Zeros of unstructured sparsity still count: dense kernels multiply them.
    """
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(example_input)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // example_input.shape[0]
