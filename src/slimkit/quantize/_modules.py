"""Modules of the simulated quantized model.

Each reproduces, in float PyTorch, what an int8 runtime computes: int8 weights times their scale,
activations rounded to the uint8 grid of their scale and zero point. Quantized weights are stored
as int8 parameters named ``weight`` (``requires_grad=False``), so parameter counts and state-dict
names stay those of the float model.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ._observers import Observer
from ._qmath import (
    W_QMAX,
    affine_qparams,
    dequantize_int4_grouped,
    dequantize_weight,
    fake_quant_act,
    fake_quant_weight,
    quantize_int4_grouped,
    quantize_weight,
    weight_scales,
)

_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
WEIGHTED_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class ActQuant(nn.Module):
    """Per-tensor affine uint8 fake quantization of one activation tensor.

    Modes: ``observe`` (record the float values, pass them through), ``fake`` (quantize and
    dequantize with the stored scale and zero point) and ``off``.

    Args:
        observer: chooses the range from calibration data; None for a tensor that shares the
            parameters of ``source`` (the output of a max-pool or flatten of a quantized tensor).
        source: name of the :class:`ActQuant` whose parameters this one copies.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor

    def __init__(self, observer: Observer | None = None, source: str | None = None) -> None:
        super().__init__()
        self.observer = observer
        self.source = source
        self.mode = "observe"
        # Not in the state dict: artifacts keep activation parameters in their JSON spec.
        self.register_buffer("scale", torch.tensor(1.0), persistent=False)
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            if self.observer is not None:
                self.observer.update(x)
            return x
        if self.mode == "fake":
            return fake_quant_act(x, self.scale, self.zero_point)
        return x

    def freeze(self) -> None:
        """Take the observer's range as this tensor's scale and zero point."""
        if self.observer is not None:
            scale, zero_point = self.observer.qparams()
            self.scale.fill_(scale)
            self.zero_point.fill_(zero_point)
        self.mode = "fake"

    def extra_repr(self) -> str:
        return f"scale={float(self.scale):.6g}, zero_point={int(self.zero_point)}, mode={self.mode}"


def _bias(module: nn.Module) -> nn.Parameter | None:
    bias = cast(torch.Tensor | None, module.bias)
    return None if bias is None else nn.Parameter(bias.detach().clone())


def _op_kwargs(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, nn.Linear):
        return {}
    if module.padding_mode != "zeros":
        raise ValueError(f"padding_mode {module.padding_mode!r} is not quantized")
    return {
        "stride": module.stride,
        "padding": module.padding,
        "dilation": module.dilation,
        "groups": module.groups,
    }


class QuantWeight(nn.Module):
    """A Conv or Linear layer whose weight is int8 per output channel (symmetric).

    While ``trainable`` (QAT) the float weight is kept and fake-quantized on every forward pass
    with a straight-through gradient; :meth:`freeze` stores it as int8.

    Args:
        module: the float ``nn.Conv1d/2d/3d`` or ``nn.Linear``.
        per_channel: one scale per output channel (else one per tensor).
        qmax: 127, or 63 for reduced-range weights.
        trainable: keep the float weight for quantization-aware training.
    """

    weight_scale: torch.Tensor
    bias: nn.Parameter | None

    def __init__(
        self,
        module: nn.Module,
        *,
        per_channel: bool = True,
        qmax: int = W_QMAX,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        weight = cast(torch.Tensor, module.weight).detach()
        self.kind = "linear" if isinstance(module, nn.Linear) else f"conv{weight.dim() - 2}d"
        self.op_kwargs = _op_kwargs(module)
        self.per_channel, self.qmax = per_channel, qmax
        self.register_buffer("weight_scale", weight_scales(weight, per_channel, qmax))
        self.weight = nn.Parameter(weight.clone(), requires_grad=trainable)
        self.bias = _bias(module)
        if not trainable:
            self.freeze()

    @property
    def trainable(self) -> bool:
        return self.weight.is_floating_point()

    @torch.no_grad()
    def freeze(self) -> None:
        """Quantize the float weight to int8 (no-op when already frozen)."""
        if self.trainable:
            self.weight_scale.copy_(weight_scales(self.weight, self.per_channel, self.qmax))
            q = quantize_weight(self.weight, self.weight_scale, self.qmax)
            self.weight = nn.Parameter(q, requires_grad=False)

    def float_weight(self) -> torch.Tensor:
        if self.trainable:
            scales = weight_scales(self.weight, self.per_channel, self.qmax)
            return fake_quant_weight(self.weight, scales, self.qmax)
        return dequantize_weight(self.weight, self.weight_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.float_weight()
        if self.kind == "linear":
            return F.linear(x, weight, self.bias)
        return _CONV_FN[weight.dim() - 2](x, weight, self.bias, **self.op_kwargs)

    @torch.no_grad()
    def round_bias(self, input_scale: float) -> None:
        """Put the bias on the int32 grid of ``input_scale · weight_scale``, as runtimes store it."""
        if self.bias is not None:
            step = input_scale * self.weight_scale.double()
            self.bias.copy_((torch.round(self.bias.double() / step) * step).float())

    def extra_repr(self) -> str:
        return (
            f"{self.kind}, weight={list(self.weight.shape)} {self.weight.dtype}, qmax={self.qmax}"
        )


class DynamicQuantLinear(QuantWeight):
    """Int8 Linear whose input is quantized per batch (uint8, range of the batch itself)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero_point = affine_qparams(float(x.min()), float(x.max()))
        x = fake_quant_act(x, torch.tensor(scale), torch.tensor(zero_point, dtype=torch.int32))
        return super().forward(x)


class Int4Linear(nn.Module):
    """Linear layer with int4 weights (two per byte) and one scale per group of inputs.

    Args:
        module: the float ``nn.Linear``; its input features must be a multiple of ``group_size``.
        group_size: input features per scale.
    """

    weight_packed: torch.Tensor
    weight_scale: torch.Tensor
    bias: nn.Parameter | None

    def __init__(self, module: nn.Linear, *, group_size: int) -> None:
        super().__init__()
        packed, scales = quantize_int4_grouped(module.weight, group_size)
        self.group_size = group_size
        self.in_features, self.out_features = module.in_features, module.out_features
        self.register_buffer("weight_packed", packed)
        self.register_buffer("weight_scale", scales)
        self.bias = _bias(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = dequantize_int4_grouped(self.weight_packed, self.weight_scale)
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int4, group_size={self.group_size}"


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule called ``name`` (dotted path) by ``module``."""
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)
