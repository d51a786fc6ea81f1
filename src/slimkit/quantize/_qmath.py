"""Quantization arithmetic: scales and zero points, int8 / int4 weights, SQNR."""

from __future__ import annotations

import torch

#: Activations: per-tensor affine uint8 (what ONNX Runtime's x86 u8s8 kernels expect).
ACT_QMIN, ACT_QMAX = 0, 255
#: Weights: symmetric int8 with -128 unused, so the scale is the same for +max and -max.
W_QMAX = 127
W_QMAX_REDUCED = 63
INT4_QMIN, INT4_QMAX = -8, 7
_EPS = 1e-12


def affine_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of uint8 covering ``[lo, hi]`` (widened to include 0, exactly)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / (ACT_QMAX - ACT_QMIN), _EPS)
    zero_point = round(ACT_QMIN - lo / scale)
    return scale, min(max(zero_point, ACT_QMIN), ACT_QMAX)


def fake_quant_act(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Quantize to uint8 and back, with a straight-through gradient inside the range."""
    return torch.fake_quantize_per_tensor_affine(
        x, scale.float(), zero_point.to(torch.int32), ACT_QMIN, ACT_QMAX
    )


def weight_scales(
    weight: torch.Tensor, per_channel: bool = True, qmax: int = W_QMAX
) -> torch.Tensor:
    """Symmetric scales, one per output channel (dim 0); per-tensor scales are repeated."""
    flat = weight.detach().reshape(weight.shape[0], -1).abs()
    amax = flat.amax(dim=1) if per_channel else flat.amax().expand(weight.shape[0])
    return (amax / qmax).clamp_min(_EPS).float().contiguous()


def quantize_weight(weight: torch.Tensor, scales: torch.Tensor, qmax: int = W_QMAX) -> torch.Tensor:
    """Round ``weight`` to int8 with per-output-channel ``scales``."""
    shape = (-1,) + (1,) * (weight.dim() - 1)
    q = torch.round(weight.detach() / scales.reshape(shape))
    return q.clamp(-qmax, qmax).to(torch.int8)


def dequantize_weight(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (q.dim() - 1)
    return q.float() * scales.reshape(shape)


def fake_quant_weight(
    weight: torch.Tensor, scales: torch.Tensor, qmax: int = W_QMAX
) -> torch.Tensor:
    """Per-channel symmetric fake quantization with a straight-through gradient (for QAT)."""
    zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scales, zero, 0, -qmax, qmax)


def quantize_int4_grouped(
    weight: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int4 per group of ``group_size`` input features, packed two values per byte.

    Returns:
        ``(packed, scales)``: uint8 ``[out, in // 2]`` (low nibble first) and float32
        ``[out, in // group_size]``.
    """
    out_features, in_features = weight.shape
    groups = weight.detach().float().reshape(out_features, in_features // group_size, group_size)
    scales = (groups.abs().amax(dim=2) / INT4_QMAX).clamp_min(_EPS)
    q = torch.round(groups / scales.unsqueeze(2)).clamp(INT4_QMIN, INT4_QMAX).to(torch.int16)
    nibbles = (q.reshape(out_features, in_features) - INT4_QMIN).to(torch.uint8)
    packed = nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)
    return packed.contiguous(), scales.contiguous()


def dequantize_int4_grouped(packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`quantize_int4_grouped`."""
    low = (packed & 0x0F).to(torch.int16)
    high = (packed >> 4).to(torch.int16)
    q = torch.stack([low, high], dim=2).reshape(packed.shape[0], -1) + INT4_QMIN
    group_size = q.shape[1] // scales.shape[1]
    return (q.float().reshape(q.shape[0], -1, group_size) * scales.unsqueeze(2)).reshape(q.shape)


def sqnr(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB (higher is better; int8 weights give ~40)."""
    reference, approx = reference.detach(), approx.detach()
    signal = reference.double().pow(2).mean()
    noise = (reference.double() - approx.double()).pow(2).mean().clamp_min(1e-30)
    return float(10 * torch.log10(signal / noise))
