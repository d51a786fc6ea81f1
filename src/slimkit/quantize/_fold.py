"""BatchNorm folding: ``bn(conv(x))`` becomes one conv with rescaled weights and a bias."""

from __future__ import annotations

import torch
from torch import fx, nn

from ._modules import set_module

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def conv_bn_pairs(model: nn.Module, graph: fx.Graph | None = None) -> list[tuple[str, str]]:
    """``(conv, bn)`` module names where the BatchNorm reads only that conv's output.

    Args:
        model: the model.
        graph: its traced graph (traced here when omitted).
    """
    if graph is None:
        return _pairs_by_parts(model, "")
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BN):
            continue
        source = node.args[0]
        if (
            isinstance(source, fx.Node)
            and source.op == "call_module"
            and isinstance(modules.get(source.target), _CONV)
            and len(source.users) == 1
        ):
            pairs.append((str(source.target), str(node.target)))
    return pairs


def _pairs_by_parts(model: nn.Module, prefix: str) -> list[tuple[str, str]]:
    """Pairs of the largest traceable parts: a model whose own forward torch.fx cannot trace
    (an input adapter's shape test, data-dependent control flow) is searched child by child."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # fx raises many types for untraceable code
        return [
            pair
            for name, child in model.named_children()
            for pair in _pairs_by_parts(child, f"{prefix}{name}.")
        ]
    return [(prefix + conv, prefix + bn) for conv, bn in conv_bn_pairs(model, graph)]


@torch.no_grad()
def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> None:
    """Fold the eval-mode ``bn`` into ``conv`` in place (conv gains a bias if it had none)."""
    assert isinstance(conv, _CONV) and isinstance(bn, _BN)
    assert bn.running_var is not None and bn.running_mean is not None
    factor = (bn.running_var + bn.eps).rsqrt()
    if bn.weight is not None:
        factor = factor * bn.weight
    shift = -bn.running_mean * factor
    if bn.bias is not None:
        shift = shift + bn.bias
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(factor.reshape(-1, *([1] * (conv.weight.dim() - 1))))
    conv.bias = nn.Parameter(bias * factor + shift)


def fold_batchnorm(model: nn.Module, *, structure_only: bool = False) -> list[tuple[str, str]]:
    """Fold every foldable BatchNorm of ``model`` into its conv, in place; return the pairs.

    The BatchNorm modules become ``nn.Identity``, so the model's code runs unchanged.

    Args:
        model: the model, in eval mode (running statistics are used).
        structure_only: only reshape the module tree (Identity, conv biases), as when an
            artifact of a folded model is loaded; weights are left as they are.

    Example:
        >>> pairs = fold_batchnorm(model.eval())
    """
    pairs = conv_bn_pairs(model)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        if structure_only:
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros(conv.weight.shape[0]))
        else:
            fold_conv_bn(conv, bn)
        set_module(model, bn_name, nn.Identity())
    return pairs
