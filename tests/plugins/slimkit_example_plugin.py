"""An example slimkit plugin: one group criterion and one quantization scheme, from outside.

Importing this module registers both, through slimkit's public API only:

- ``l1-normalized`` (structured pruning): the L1 norm of each unit's parameters over its
  group, divided by the group's total, so that every group's scores sum to 1.
- ``int8-per-tensor`` (quantization): weight-only int8 with one symmetric scale per weight
  tensor, ``s = max|w| / 127`` and ``w ≈ round(w / s) · s``; compute stays in float.

After ``import slimkit_example_plugin``, ``slimkit prune --method structured --importance
l1-normalized`` and ``slimkit quantize --scheme int8-per-tensor`` work, and ``slimkit.load``
rebuilds the quantized model from its artifact.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slimkit import ConfigBase
from slimkit.graph import DependencyGraph
from slimkit.importance import GROUP, MagnitudeGroupImportance
from slimkit.quantize import QuantReport, register_scheme

CRITERION = "l1-normalized"
SCHEME = "int8-per-tensor"
QMAX = 127


@dataclass(frozen=True)
class L1NormalizedImportance:
    """L1 magnitude of each unit over its group, normalised to sum to 1 within the group."""

    name: str = CRITERION
    needs_data: bool = False

    def __call__(
        self, graph: DependencyGraph, model: nn.Module, calib: Iterable[Any] | None = None
    ) -> list[torch.Tensor]:
        scores = MagnitudeGroupImportance(p=1)(graph, model)
        return [s / s.sum() if s.sum() > 0 else s for s in scores]


@dataclass(frozen=True, kw_only=True)
class Int8PerTensorConfig(ConfigBase):
    """Int8 weights with one scale per tensor in every Conv2d and Linear layer.

    Attributes:
        exclude: module names or fnmatch patterns of layers kept in float.
    """

    TAG = ("scheme", SCHEME)

    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.exclude, str) or not isinstance(self.exclude, tuple):
            raise ValueError(f"Int8PerTensorConfig.exclude must be a tuple, not {self.exclude!r}")


def per_tensor_scale(weight: torch.Tensor) -> torch.Tensor:
    """The symmetric int8 scale of a whole tensor: max|w| / 127 (float32, never 0)."""
    return (weight.detach().abs().max().float() / QMAX).clamp_min(1e-12)


class Int8PerTensorWeight(nn.Module):
    """A Conv2d or Linear layer whose weight is int8 times one float32 scale."""

    weight: torch.Tensor
    scale: torch.Tensor

    def __init__(self, module: nn.Conv2d | nn.Linear) -> None:
        super().__init__()
        scale = per_tensor_scale(module.weight)
        codes = torch.clamp(torch.round(module.weight.detach() / scale), -QMAX, QMAX)
        self.register_buffer("weight", codes.to(torch.int8))
        self.register_buffer("scale", scale.reshape(()))
        bias = module.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.conv: dict[str, Any] | None = (
            {
                "stride": module.stride,
                "padding": module.padding,
                "dilation": module.dilation,
                "groups": module.groups,
            }
            if isinstance(module, nn.Conv2d)
            else None
        )

    def dequantized(self) -> torch.Tensor:
        return self.weight.float() * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.linear(x, self.dequantized(), self.bias)
        return F.conv2d(x, self.dequantized(), self.bias, **self.conv)


def _swap(model: nn.Module, cfg: Int8PerTensorConfig) -> QuantReport:
    report = QuantReport()
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        if any(name == p or fnmatch.fnmatchcase(name, p) for p in cfg.exclude):
            report.float_ops.append({"node": name, "op": name, "reason": "excluded"})
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8PerTensorWeight(module))
        report.quantized.append(name)
    return report


def quantize_int8_per_tensor(
    model: nn.Module, cfg: Int8PerTensorConfig, **_: Any
) -> tuple[nn.Module, QuantReport]:
    """The scheme's ``apply``: a quantized copy (the input model is left untouched)."""
    quantized = copy.deepcopy(model).cpu().eval()
    return quantized, _swap(quantized, cfg)


def restore_int8_per_tensor(model: nn.Module, cfg: Int8PerTensorConfig) -> nn.Module:
    """The scheme's ``restore``: the quantized structure, which the artifact's tensors fill."""
    _swap(model.eval(), cfg)
    return model


GROUP.register(CRITERION, L1NormalizedImportance)
register_scheme(SCHEME, Int8PerTensorConfig, quantize_int8_per_tensor, restore_int8_per_tensor)
