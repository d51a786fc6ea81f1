"""Parameter, non-zero and MAC counts."""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .._hooks import run_with_hooks


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
    Zeros of unstructured sparsity still count: dense kernels multiply them. An int8 model that
    runs on ONNX Runtime counts the products of its float model (the same ones, in int8).
    """
    model = getattr(model, "float_model", model)
    was_training = model.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    try:
        # Without gradients: FlopCounterMode's module tracker hooks the autograd graph of
        # every module input that requires grad, and fails on a parameter passed to a
        # submodule as its input (CaiT's class token).
        for param in trainable:
            param.requires_grad_(False)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example_input)
    finally:
        for param in trainable:
            param.requires_grad_(True)
        model.train(was_training)
    return int(counter.get_total_flops()) // 2 // example_input.shape[0]


_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def layer_macs(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates of every convolution and linear layer, per example, by module path.

    A layer called twice counts twice; layers not reached by ``example_input`` are absent.
    """
    counts: dict[str, int] = {}

    def hook(name: str) -> Any:
        def count(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            if isinstance(module, nn.Linear):
                per_output = module.in_features
            else:
                conv = cast(nn.Conv2d, module)
                per_output = conv.in_channels // conv.groups * math.prod(conv.kernel_size)
            macs = output.numel() // output.shape[0] * per_output
            counts[name] = counts.get(name, 0) + macs

        return count

    layers = ((m, hook(n)) for n, m in model.named_modules() if isinstance(m, _WEIGHTED))
    run_with_hooks(model, example_input, layers)
    return counts
