"""Depth pruning: whole residual blocks that can be replaced by the identity.

A block qualifies when it is an element of an ``nn.Sequential`` (how torchvision, timm and
slimkit build stages) but not itself a Sequential (a stage), maps one tensor to a tensor of
the same shape, holds a convolution or linear layer, and still depends on its input with
every such layer's weights zeroed: it has a parameter-free path (the skip connection) from input to output. That path carries the input's
channels to the output, so the block's input and output channels are one channel group, and
the block can be removed after any channel pruning without breaking a shape. A plain
shape-preserving conv fails the last test: with its weights zeroed its output is a constant.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedOpError

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _children_of_sequentials(model: nn.Module) -> dict[str, nn.Module]:
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            for child_name, child in module.named_children():
                if any(isinstance(m, _WEIGHTED) for m in child.modules()):
                    found[f"{name}.{child_name}" if name else child_name] = child
    return found


def _record_inputs(
    model: nn.Module, blocks: dict[str, nn.Module], example_inputs: Any
) -> dict[str, torch.Tensor]:
    """The input of every block that maps one tensor to a tensor of the same shape (called
    exactly once on the example)."""
    inputs: dict[str, torch.Tensor | None] = {}

    def hook(name: str) -> Any:
        def record(_module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            same = (
                name not in inputs
                and len(args) == 1
                and isinstance(args[0], torch.Tensor)
                and isinstance(output, torch.Tensor)
                and args[0].shape == output.shape
                and args[0].dtype == output.dtype
            )
            inputs[name] = args[0].detach().clone() if same else None

        return record

    handles = [block.register_forward_hook(hook(name)) for name, block in blocks.items()]
    try:
        with torch.no_grad():
            model(*example_inputs) if isinstance(example_inputs, tuple) else model(example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: x for name, x in inputs.items() if x is not None}


def _has_skip_path(block: nn.Module, x: torch.Tensor) -> bool:
    """Whether the output still depends on the input with every conv/linear weight zeroed."""
    probe = copy.deepcopy(block).eval()
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, _WEIGHTED):
                module.weight.zero_()
        other = x + torch.randn_like(x).abs() + 1.0  # positive: survives a ReLU on the path
        return not torch.allclose(probe(x), probe(other))


def removable_blocks(model: nn.Module, example_inputs: Any) -> list[str]:
    """Names of the residual blocks ``model`` can lose (outermost only), in module order.

    Example:
        >>> removable_blocks(resnet56, torch.randn(1, 1, 28, 28))[:2]
        ['layer1.1', 'layer1.2']
    """
    candidates = _children_of_sequentials(model)
    was_training = model.training
    model.eval()
    try:
        inputs = _record_inputs(model, candidates, example_inputs)
    finally:
        model.train(was_training)
    found = [
        n
        for n, block in candidates.items()
        # A Sequential that qualifies is a stage of blocks: its elements are the candidates.
        if n in inputs and not isinstance(block, nn.Sequential) and _has_skip_path(block, inputs[n])
    ]
    return [n for n in found if not any(n.startswith(f"{other}.") for other in found)]


def remove_blocks(model: nn.Module, names: list[str] | tuple[str, ...]) -> None:
    """Replace the named elements of ``nn.Sequential`` containers by ``nn.Identity``, in place.

    Raises:
        UnsupportedOpError: if a name is not an element of an ``nn.Sequential``.
    """
    for name in names:
        parent_name, _, index = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name)
        except AttributeError:
            parent = None
        if not isinstance(parent, nn.Sequential) or index not in parent._modules:
            raise UnsupportedOpError(
                f"cannot remove {name!r}: only elements of an nn.Sequential can be removed; "
                "see slimkit.graph.removable_blocks(model, example_inputs) for the candidates"
            )
        parent._modules[index] = nn.Identity()
