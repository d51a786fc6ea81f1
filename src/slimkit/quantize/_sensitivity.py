"""Per-layer int8 sensitivity: the accuracy lost when only one layer is quantized.

The ranking tells which layers to keep in float (``Int8StaticConfig(exclude=...)``) when int8
misses an accuracy budget: mixed precision, one layer at a time from the top of the list. Each
layer is measured in the graph that deploys: ONNX Runtime's quantizer quantizes that layer's
node alone (its weight, input and output) with the ranges calibrated once for the whole graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import Subset

from ..data import Splits, make_loader
from ..errors import DataError
from ..measure import Metric
from ._calib import calibration_batches
from ._config import Int8StaticConfig
from ._export import INPUT, layer_nodes
from ._graph import check_exclude, matches, quantizable
from ._modules import WEIGHTED_TYPES


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


def sensitivity(
    model: nn.Module,
    cfg: Int8StaticConfig,
    data: Splits,
    *,
    batches: int = 8,
    batch_size: int = 256,
    on_layer: Callable[[int, int, str], None] | None = None,
    metric: Callable[[nn.Module, Any], float] | None = None,
    lower_is_better: bool = False,
) -> list[LayerSensitivity]:
    """Rank layers by the validation accuracy (or ``metric``) lost when only that layer is int8.

    Each layer is quantized alone (its int8 weights and its input/output activations, with the
    ranges calibrated as ``cfg`` says) in the ONNX Runtime graph; everything else stays float.
    A :class:`QATConfig` is measured as its post-training part (no fine-tuning).

    Args:
        model: the trained float model (left untouched).
        cfg: the int8 configuration; its ``exclude`` layers are not ranked.
        data: calibration is read from the training split, accuracy from the validation split.
        batches: validation batches evaluated (``batches · batch_size`` images at most).
        batch_size: images per validation batch.
        on_layer: called with ``(index, total, layer)`` before each layer (progress).
        metric: ``metric(model, dataset) -> float`` scored on the validation images instead of
            top-1 accuracy (the ONNX Runtime graph is passed as an ``nn.Module``).
        lower_is_better: ``metric`` is a loss or an error rate.

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
    if metric is not None:
        return _rank_by_metric(
            model, cfg, calib, subset, Metric(metric, lower_is_better=lower_is_better), on_layer
        )
    reference = _outputs(model, loader)
    baseline = _accuracy(reference, loader)
    single = _single_layer_graphs(model, cfg, calib)
    layers = single.layers(model, cfg.exclude)
    scored = []
    for i, layer in enumerate(layers):
        if on_layer is not None:
            on_layer(i, len(layers), layer)
        outputs = single.outputs(layer, loader)
        error = sum(float((o - r).pow(2).sum()) for o, r in zip(outputs, reference, strict=True))
        scored.append((baseline - _accuracy(outputs, loader), error, layer))
    # A single int8 layer rarely flips a prediction: ties are ordered by the logits' error.
    scored.sort(key=lambda t: (-t[0], -t[1]))
    return [LayerSensitivity(layer, drop) for drop, _, layer in scored]


def _rank_by_metric(
    model: nn.Module,
    cfg: Int8StaticConfig,
    calib: list[torch.Tensor],
    subset: Any,
    metric: Metric,
    on_layer: Callable[[int, int, str], None] | None,
) -> list[LayerSensitivity]:
    from ._onnx import session_from_bytes

    baseline = metric(model, subset)
    single = _single_layer_graphs(model, cfg, calib)
    layers = single.layers(model, cfg.exclude)
    scored = []
    for i, layer in enumerate(layers):
        if on_layer is not None:
            on_layer(i, len(layers), layer)
        graph = single.graph(layer).SerializeToString()
        runner = _SessionModule(session_from_bytes(graph, torch.get_num_threads()))
        scored.append((metric.drop(baseline, metric(runner, subset)), layer))
    scored.sort(key=lambda t: -t[0])
    return [LayerSensitivity(layer, drop) for drop, layer in scored]


class _SessionModule(nn.Module):
    """An ONNX Runtime session behind ``nn.Module``'s call interface, for a user's metric."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {INPUT: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


class _SingleLayerGraphs:
    """The model's float graph and ranges, from which one-layer int8 graphs are made."""

    def __init__(self, proto: Any, ranges: dict[str, tuple[float, float]], cfg: Any) -> None:
        self.proto, self.ranges, self.cfg = proto, ranges, cfg
        self.nodes = {module: node for node, module in layer_nodes(proto).items()}

    def layers(self, model: nn.Module, exclude: tuple[str, ...]) -> list[str]:
        """The quantizable layers of ``model`` that the graph maps back to a node."""
        return [name for name in quantizable_layers(model, exclude) if name in self.nodes]

    def graph(self, layer: str) -> Any:
        """The QDQ graph in which ``layer`` is the only quantized node."""
        from ._ort_int8 import _reduce_range, quantize_graph

        return quantize_graph(
            self.proto,
            self.ranges,
            per_channel=self.cfg.per_channel,
            reduce_range=_reduce_range(self.cfg),
            only_nodes=[self.nodes[layer]],
        )

    def outputs(
        self, layer: str, loader: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> list[torch.Tensor]:
        from ._onnx import session_from_bytes

        graph = self.graph(layer).SerializeToString()
        session = session_from_bytes(graph, torch.get_num_threads())
        return [torch.from_numpy(session.run(None, {INPUT: x.numpy()})[0]) for x, _ in loader]


def _single_layer_graphs(
    model: nn.Module, cfg: Int8StaticConfig, calib: list[torch.Tensor]
) -> _SingleLayerGraphs:
    from ._ort_calib import measure_ranges
    from ._ort_int8 import float_graph, prepare_float

    float_model, _ = prepare_float(model)
    proto = float_graph(float_model, calib[0][:2])
    return _SingleLayerGraphs(
        proto, measure_ranges(proto, calib, cfg.observer, cfg.percentile), cfg
    )


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
