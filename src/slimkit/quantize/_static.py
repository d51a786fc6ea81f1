"""Int8 static post-training quantization and quantization-aware training (same int8 model)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn

from .._attrs import ARCH_ATTR
from ..data import Splits
from ..errors import DataError
from ..train import train
from ._calib import calibration_batches, run_batches
from ._config import Int8StaticConfig, QATConfig
from ._fold import fold_batchnorm
from ._graph import (
    RESTORED_REPORT_ATTR,
    QuantReport,
    check_exclude,
    freeze_act_quants,
    input_act_quant,
    place_act_quant,
    round_biases,
    set_mode,
    swap_weighted,
    trace,
)
from ._modules import WEIGHTED_TYPES, ActQuant, QuantWeight
from ._qmath import W_QMAX, W_QMAX_REDUCED

#: u8 codes above this can make two u8·s8 products overflow int16 (2 · 129 · 127 > 32767).
SATURATION_CODE = 128
#: Share of calibration inputs above that code from which ``reduce_range="auto"`` reduces.
SATURATION_SHARE = 0.01


def build_static(
    model: nn.Module, cfg: Int8StaticConfig, *, structure_only: bool, trainable: bool = False
) -> tuple[fx.GraphModule, QuantReport]:
    """Fold BatchNorm, trace, swap Conv/Linear for int8 layers and place activation quantizers.

    ``model`` is modified; pass a copy. With ``structure_only`` the tensors are placeholders,
    filled afterwards from an artifact.
    """
    check_exclude(model, cfg.exclude, WEIGHTED_TYPES)
    pairs = fold_batchnorm(model.eval(), structure_only=structure_only)
    gm = trace(model)
    qmax = W_QMAX_REDUCED if cfg.reduce_range == "all" else W_QMAX
    swap_weighted(
        gm,
        cfg.exclude,
        lambda m: QuantWeight(m, per_channel=cfg.per_channel, qmax=qmax, trainable=trainable),
    )
    report = place_act_quant(gm, cfg.observer, cfg.percentile, cfg.exclude)
    report.folded = [list(pair) for pair in pairs]
    if hasattr(model, ARCH_ATTR):
        setattr(gm, ARCH_ATTR, getattr(model, ARCH_ATTR))
    return gm.eval(), report


def _upper_half_share(x: torch.Tensor, source: ActQuant) -> float:
    codes = torch.round(x / source.scale) + source.zero_point
    return float((codes > SATURATION_CODE).float().mean())


@torch.no_grad()
def reduce_saturating_ranges(gm: fx.GraphModule, batch: torch.Tensor, report: QuantReport) -> None:
    """Give 7-bit weights to layers whose inputs often exceed uint8 code 128 (``auto`` mode).

    Below code 129 two u8·s8 products cannot overflow int16, whatever the weights; above it,
    AVX2 kernels without VNNI may saturate, and then ONNX Runtime and the simulation disagree.
    """
    shares: dict[str, float] = {}
    hooks = []
    for node in gm.graph.nodes:
        layer = gm.get_submodule(str(node.target)) if node.op == "call_module" else None
        source = input_act_quant(gm, node)
        if isinstance(layer, QuantWeight) and source is not None:
            record = lambda m, args, n=str(node.target), s=source: shares.__setitem__(  # noqa: E731
                n, _upper_half_share(args[0], s)
            )
            hooks.append(layer.register_forward_pre_hook(record))
    gm(batch)
    for hook in hooks:
        hook.remove()
    for name, share in shares.items():
        if share > SATURATION_SHARE:
            layer = gm.get_submodule(name)
            assert isinstance(layer, QuantWeight)
            layer.qmax = W_QMAX_REDUCED
            report.reduced_range.append(name)


def _calibrated(
    model: nn.Module, cfg: Int8StaticConfig, calib_data: Any
) -> tuple[fx.GraphModule, QuantReport]:
    batches = calibration_batches(
        calib_data, model, batches=cfg.calib_batches, batch_size=cfg.calib_batch_size
    )
    gm, report = build_static(copy.deepcopy(model).cpu(), cfg, structure_only=False, trainable=True)
    set_mode(gm, "observe")
    run_batches(gm, batches)
    freeze_act_quants(gm)
    if cfg.reduce_range == "auto":
        reduce_saturating_ranges(gm, batches[0], report)
    return gm, report


def _freeze_weights(gm: fx.GraphModule) -> None:
    for module in gm.modules():
        if isinstance(module, QuantWeight):
            module.freeze()
    round_biases(gm)


def quantize_static(
    model: nn.Module, cfg: Int8StaticConfig, *, calib_data: Any = None, **_: Any
) -> tuple[nn.Module, QuantReport]:
    """Calibrate activation ranges on ``calib_data`` and return the simulated int8 model."""
    gm, report = _calibrated(model, cfg, calib_data)
    _freeze_weights(gm)
    return gm, report


def quantize_qat(
    model: nn.Module,
    cfg: QATConfig,
    *,
    calib_data: Any = None,
    data: Splits | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **_: Any,
) -> tuple[nn.Module, QuantReport]:
    """Calibrate, fine-tune with fake-quantized weights (straight-through), then freeze to int8."""
    if data is None:
        raise DataError("QAT fine-tunes the model: pass data=splits (training data)")
    gm, report = _calibrated(model, cfg, calib_data if calib_data is not None else data)
    train(gm, data, cfg.train, device=device, progress=progress, desc="qat")
    _freeze_weights(gm.cpu().eval())
    return gm, report


def restore_static(model: nn.Module, cfg: Int8StaticConfig) -> nn.Module:
    """The module structure of a static/QAT int8 model, ready for its saved tensors."""
    gm, report = build_static(model, cfg, structure_only=True)
    set_mode(gm, "fake")
    setattr(gm, RESTORED_REPORT_ATTR, report)
    return gm
