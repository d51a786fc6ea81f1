"""Schemes that need no calibration: int8/int4 weight-only, int8 dynamic, fp16 and bf16."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ._config import (
    Bf16Config,
    Fp16Config,
    Int4WeightOnlyConfig,
    Int8DynamicConfig,
    Int8WeightOnlyConfig,
)
from ._graph import QuantReport, check_exclude, matches, swap_weighted
from ._modules import WEIGHTED_TYPES, DynamicQuantLinear, Int4Linear, QuantWeight

_LINEAR = (nn.Linear,)


def _skipped(
    model: nn.Module, done: list[str], types: tuple[type, ...], why: str
) -> list[dict[str, str]]:
    return [
        {"node": name, "op": f"{name} ({type(m).__name__})", "reason": why}
        for name, m in model.named_modules()
        if isinstance(m, types) and name not in done
    ]


def _weight_only(model: nn.Module, cfg: Int8WeightOnlyConfig) -> tuple[nn.Module, QuantReport]:
    check_exclude(model, cfg.exclude, WEIGHTED_TYPES)
    done = swap_weighted(model, cfg.exclude, lambda m: QuantWeight(m))
    return model, QuantReport(done, _skipped(model, done, WEIGHTED_TYPES, "excluded by the config"))


def quantize_weight_only(
    model: nn.Module, cfg: Int8WeightOnlyConfig, **_: Any
) -> tuple[nn.Module, QuantReport]:
    """Int8 per-channel weights in every Conv/Linear; compute in float."""
    return _weight_only(copy.deepcopy(model).cpu().eval(), cfg)


def _dynamic(model: nn.Module, cfg: Int8DynamicConfig) -> tuple[nn.Module, QuantReport]:
    check_exclude(model, cfg.exclude, _LINEAR)
    done = swap_weighted(model, cfg.exclude, lambda m: DynamicQuantLinear(m), _LINEAR)
    skipped = _skipped(model, done, (nn.Conv1d, nn.Conv2d, nn.Conv3d), "dynamic: Linear only")
    return model, QuantReport(done, skipped)


def quantize_dynamic(
    model: nn.Module, cfg: Int8DynamicConfig, **_: Any
) -> tuple[nn.Module, QuantReport]:
    """Int8 Linear layers whose inputs are quantized per batch at run time."""
    return _dynamic(copy.deepcopy(model).cpu().eval(), cfg)


def _int4(model: nn.Module, cfg: Int4WeightOnlyConfig) -> tuple[nn.Module, QuantReport]:
    check_exclude(model, cfg.exclude, _LINEAR)
    skipped = [
        {"node": name, "op": f"{name} (Linear)", "reason": "width not a multiple of group_size"}
        for name, m in model.named_modules()
        if type(m) is nn.Linear
        and not matches(name, cfg.exclude)
        and m.in_features % cfg.group_size
    ]
    exclude = cfg.exclude + tuple(entry["node"] for entry in skipped)
    build = lambda m: Int4Linear(m, group_size=cfg.group_size)  # noqa: E731
    done = swap_weighted(model, exclude, build, _LINEAR)
    return model, QuantReport(done, skipped)


def quantize_int4(
    model: nn.Module, cfg: Int4WeightOnlyConfig, **_: Any
) -> tuple[nn.Module, QuantReport]:
    """Int4 grouped weights in every Linear whose width the group size divides."""
    return _int4(copy.deepcopy(model).cpu().eval(), cfg)


def _cast_input(dtype: torch.dtype) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args
        )

    return hook


def _cast_output(module: nn.Module, args: Any, output: Any) -> Any:
    return output.float() if torch.is_tensor(output) else output


def _half(model: nn.Module, dtype: torch.dtype) -> tuple[nn.Module, QuantReport]:
    model = model.to(dtype)
    model.register_forward_pre_hook(_cast_input(dtype))
    model.register_forward_hook(_cast_output)
    names = [n for n, m in model.named_modules() if isinstance(m, WEIGHTED_TYPES)]
    return model, QuantReport(names, [])


def quantize_fp16(model: nn.Module, cfg: Fp16Config, **_: Any) -> tuple[nn.Module, QuantReport]:
    """All float tensors in float16; inputs cast in, outputs cast back to float32."""
    return _half(copy.deepcopy(model).cpu().eval(), torch.float16)


def quantize_bf16(model: nn.Module, cfg: Bf16Config, **_: Any) -> tuple[nn.Module, QuantReport]:
    """All float tensors in bfloat16; inputs cast in, outputs cast back to float32."""
    return _half(copy.deepcopy(model).cpu().eval(), torch.bfloat16)


def restore_plain(apply: Any) -> Any:
    """A restorer that rebuilds the structure by re-applying the scheme to the fresh model."""

    def restore(model: nn.Module, cfg: Any) -> nn.Module:
        restored: nn.Module = apply(model.eval(), cfg)[0]
        return restored

    return restore


RESTORERS = {
    Int8WeightOnlyConfig: restore_plain(_weight_only),
    Int8DynamicConfig: restore_plain(_dynamic),
    Int4WeightOnlyConfig: restore_plain(_int4),
    Fp16Config: restore_plain(lambda m, c: _half(m, torch.float16)),
    Bf16Config: restore_plain(lambda m, c: _half(m, torch.bfloat16)),
}
