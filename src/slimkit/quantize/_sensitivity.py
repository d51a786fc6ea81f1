"""Per-layer int8 sensitivity: the accuracy lost when only one layer is quantized.

The ranking tells which layers to keep in float (``Int8StaticConfig(exclude=...)``) when int8
misses an accuracy budget: mixed precision, one layer at a time from the top of the list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import fx, nn
from torch.utils.data import Subset

from ..data import Splits, make_loader
from ..errors import DataError
from ._calib import calibration_batches
from ._config import Int8StaticConfig
from ._graph import act_quants, check_exclude, matches, quantizable
from ._modules import WEIGHTED_TYPES, ActQuant
from ._static import quantize_static


class LayerSensitivity(NamedTuple):
    """One layer's accuracy drop (validation top-1 points) when it alone is int8."""

    layer: str
    accuracy_drop: float

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "accuracy_drop": self.accuracy_drop}


def quantizable_layers(model: nn.Module, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names of the Conv/Linear layers int8-static would quantize, in module order."""
    return [
        name
        for name, module in model.named_modules()
        if type(module) in WEIGHTED_TYPES and quantizable(module) and not matches(name, exclude)
    ]


def _is_relu(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(str(node.target)), nn.ReLU)
    return node.target in (torch.relu, nn.functional.relu, "relu")


def _act_quant_of(gm: fx.GraphModule, node: Any) -> str | None:
    is_module = isinstance(node, fx.Node) and node.op == "call_module"
    if is_module and isinstance(gm.get_submodule(str(node.target)), ActQuant):
        return str(node.target)
    return None


def _own_act_quants(gm: fx.GraphModule, layer: str) -> set[str]:
    """The quantizers of ``layer``'s input and (after a fused ReLU) output."""
    node = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == layer)
    own = {_act_quant_of(gm, node.args[0])}
    out = node
    while len(out.users) == 1 and _is_relu(gm, next(iter(out.users))):
        out = next(iter(out.users))
    if len(out.users) == 1:
        own.add(_act_quant_of(gm, next(iter(out.users))))
    return {name for name in own if name is not None}


def _only_layer(model: nn.Module, cfg: Int8StaticConfig, layer: str, calib: list) -> nn.Module:
    """The int8 model in which ``layer`` (weights, input, output) is the only quantized part."""
    others = tuple(n for n in quantizable_layers(model, cfg.exclude) if n != layer)
    single = Int8StaticConfig(**{**_static_fields(cfg), "exclude": cfg.exclude + others})
    gm, _ = quantize_static(model, single, calib_data=calib)
    assert isinstance(gm, fx.GraphModule)
    own = _own_act_quants(gm, layer)
    for name, aq in act_quants(gm).items():
        if name not in own:
            aq.mode = "off"  # residual adds, pooling, ... of the other layers stay float
    return gm


def _static_fields(cfg: Int8StaticConfig) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(Int8StaticConfig)}
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name in names}


def sensitivity(
    model: nn.Module,
    cfg: Int8StaticConfig,
    data: Splits,
    *,
    batches: int = 8,
    batch_size: int = 256,
    on_layer: Callable[[int, int, str], None] | None = None,
) -> list[LayerSensitivity]:
    """Rank layers by the validation accuracy lost when only that layer is int8.

    Each layer is quantized alone (its int8 weights and its input/output activations, with the
    ranges calibrated as ``cfg`` says) in the simulated int8 model; everything else stays float.
    A :class:`QATConfig` is measured as its post-training part (no fine-tuning).

    Args:
        model: the trained float model (left untouched).
        cfg: the int8 configuration; its ``exclude`` layers are not ranked.
        data: calibration is read from the training split, accuracy from the validation split.
        batches: validation batches evaluated (``batches · batch_size`` images at most).
        batch_size: images per validation batch.
        on_layer: called with ``(index, total, layer)`` before each layer (progress).

    Returns:
        ``(layer, accuracy_drop)`` records, the worst first; a negative drop is a gain. Equal
        drops are ordered by the squared error of the logits against the float model's.

    Example:
        >>> ranked = sensitivity(model, Int8StaticConfig(), splits, batches=4)
        >>> q = quantize(model, Int8StaticConfig(exclude=(ranked[0].layer,)), calib_data=splits)
    """
    if not isinstance(cfg, Int8StaticConfig):
        raise TypeError(f"sensitivity() takes an Int8StaticConfig, got {type(cfg).__name__}")
    for name, value in (("batches", batches), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"sensitivity() {name} must be an integer >= 1, got {value!r}")
    if not isinstance(data, Splits):
        raise DataError("sensitivity() needs slimkit Splits (training and validation data)")
    check_exclude(model, cfg.exclude, WEIGHTED_TYPES)
    subset = Subset(data.val, range(min(len(data.val), batches * batch_size)))  # type: ignore[arg-type]
    loader = list(make_loader(subset, batch_size=batch_size))
    calib = calibration_batches(
        data, model, batches=cfg.calib_batches, batch_size=cfg.calib_batch_size
    )
    reference = _outputs(model, loader)
    baseline = _accuracy(reference, loader)
    layers = quantizable_layers(model, cfg.exclude)
    scored = []
    for i, layer in enumerate(layers):
        if on_layer is not None:
            on_layer(i, len(layers), layer)
        outputs = _outputs(_only_layer(model, cfg, layer, calib), loader)
        error = sum(float((o - r).pow(2).sum()) for o, r in zip(outputs, reference, strict=True))
        scored.append((baseline - _accuracy(outputs, loader), error, layer))
    # A single int8 layer rarely flips a prediction: ties are ordered by the logits' error.
    scored.sort(key=lambda t: (-t[0], -t[1]))
    return [LayerSensitivity(layer, drop) for drop, _, layer in scored]


@torch.no_grad()
def _outputs(
    model: nn.Module, loader: list[tuple[torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    model.eval()
    return [model(x) for x, _ in loader]


def _accuracy(
    outputs: list[torch.Tensor], loader: list[tuple[torch.Tensor, torch.Tensor]]
) -> float:
    correct = sum(int((o.argmax(1) == y).sum()) for o, (_, y) in zip(outputs, loader, strict=True))
    return 100.0 * correct / max(sum(len(y) for _, y in loader), 1)
