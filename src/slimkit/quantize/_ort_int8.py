"""int8 static quantization for ONNX Runtime, by ONNX Runtime's own quantizer.

The pipeline: the float graph from PyTorch's exporter (:mod:`._export`, BatchNorm folded in
PyTorch first) → activation ranges chosen by slimkit's observers (``minmax``, ``percentile``,
``mse``) on slimkit's calibration batches, with every float tensor of the graph exposed to
ONNX Runtime → ``onnxruntime.quantization.quantize_static`` reading those ranges from its
calibration cache (QDQ format, symmetric int8 weights per output channel, uint8 activations,
the excluded layers' nodes left float) → the graph ONNX Runtime's CPU provider fuses into
QLinearConv, QLinearMatMul, QGemm, QLinearAdd and friends.

slimkit's own part is the ranges (ONNX Runtime's percentile calibrator clips symmetric ranges of
``|x|``, which wastes half the uint8 codes of a post-ReLU tensor) and the bookkeeping: the
quantized model is the deployed graph itself behind ``nn.Module`` (:class:`OrtInt8Model`), so
what the search measures is what ships. Its artifact stores each int8 weight as ONNX Runtime
quantized it (int8 values and per-channel scales), the other tensors in float, and the ranges;
loading re-exports and re-quantizes to the same graph.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ArtifactError, UnsupportedOpError
from ._calib import calibration_batches
from ._config import Int8StaticConfig
from ._export import INPUT, export_proto, layer_nodes, require
from ._float_passes import global_average_pools, linear_layers_as_gemm
from ._fold import fold_batchnorm
from ._graph import QuantReport, matches
from ._ort_calib import float_tensors, measure_ranges
from ._ort_report import build_report, int8_weights
from ._qdq_passes import deployable

#: Suffix of the per-channel scale stored beside an int8 weight in an artifact (no parameter
#: name can contain "@").
SCALE_SUFFIX = "@int8-scale"
#: The ``engine`` value of a spec section written by this module.
ENGINE = "onnxruntime-quantizer"


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    # quantize_static logs a pre-processing hint through the root logger on every call.
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


#: Ops ONNX Runtime's quantizer would quantize that slimkit does not. Softmax: with it quantized,
#: the attention scores are rounded to uint8 before the softmax, and on a random-weight ViT-Tiny
#: 20% of the attention outputs differed by a step from the same graph computed op by op; with
#: the scores left float (int8 product, float output), 2% did. InstanceNormalization (how
#: GroupNorm exports): ONNX Runtime has no int8 kernel for it, and its quantizer fails on the
#: 1-element scale GroupNorm exports ("shared mode is not supported for weight", PoolFormer).
FLOAT_OP_TYPES = frozenset({"Softmax", "InstanceNormalization"})


def _op_types(quantization: Any) -> list[str]:
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - FLOAT_OP_TYPES)


def quantize_graph(
    proto: Any,
    ranges: dict[str, tuple[float, float]],
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
    exclude_nodes: list[str] | None = None,
    only_nodes: list[str] | None = None,
) -> Any:
    """The QDQ int8 graph ONNX Runtime's ``quantize_static`` makes of ``proto`` with ``ranges``.

    Args:
        proto: the float graph.
        ranges: tensor name → (low, high), as :func:`measure_ranges` returns.
        per_channel: one weight scale per output channel.
        reduce_range: 7-bit weights (for u8·s8 kernels that can saturate without VNNI).
        exclude_nodes: node names left float.
        only_nodes: when given, only these nodes are quantized.
    """
    onnx = require("onnx")
    quantization = require("onnxruntime.quantization")
    calibrate = require("onnxruntime.quantization.calibrate")
    data = {
        name: (np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32))
        for name, (lo, hi) in ranges.items()
    }
    tensors = calibrate.TensorsData(quantization.CalibrationMethod.MinMax, data)
    with tempfile.TemporaryDirectory(prefix="slimkit-int8-") as work:
        source, target, cache = (Path(work) / n for n in ("float.onnx", "int8.onnx", "ranges.json"))
        source.write_bytes(proto.SerializeToString())
        calibrate.save_tensors_data(tensors, cache)
        with _quiet_quantizer():
            quantization.quantize_static(
                str(source),
                str(target),
                None,
                calibration_cache_path=str(cache),
                calibrate_method=quantization.CalibrationMethod.MinMax,
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                op_types_to_quantize=_op_types(quantization),
                nodes_to_exclude=list(exclude_nodes or []),
                nodes_to_quantize=list(only_nodes or []),
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        return onnx.load(str(target))


def _reduce_range(cfg: Int8StaticConfig) -> bool:
    if cfg.reduce_range == "auto":
        from ..measure import cpu_info

        return not cpu_info()["vnni"]
    return cfg.reduce_range == "all"


def _excluded_nodes(proto: Any, exclude: tuple[str, ...]) -> list[str]:
    return [node for node, module in layer_nodes(proto).items() if matches(module, exclude)]


def prepare_float(
    model: nn.Module, *, structure_only: bool = False
) -> tuple[nn.Module, list[list[str]]]:
    """A CPU eval copy of ``model`` with BatchNorm folded where torch.fx finds the pairs."""
    float_model = copy.deepcopy(model).cpu().eval()
    pairs = fold_batchnorm(float_model, structure_only=structure_only)
    return float_model, [list(p) for p in pairs]


class OrtInt8Model(nn.Module):
    """The int8 ONNX Runtime graph of a float model, behind the ``nn.Module`` call interface.

    ``float_model`` holds the float weights the graph was quantized from (each int8 layer's
    weight is the dequantized int8 weight), for counting parameters and MACs and for saving.

    Args:
        float_model: the float model the graph computes.
        proto: its QDQ ``ModelProto``; ``None`` rebuilds it from ``section`` on first use.
        section: the spec section (ranges, exclusions, input shape) that rebuilds it.
    """

    def __init__(self, float_model: nn.Module, proto: Any, section: dict[str, Any]) -> None:
        super().__init__()
        self.float_model = float_model
        self._proto = proto
        #: A restored structure whose tensors are not loaded yet (its int8 weights are unknown).
        self._awaiting_tensors = proto is None
        self._deployed: Any = None
        self._section = section
        self._sessions: dict[int, Any] = {}
        # torch leaves these two untyped; the aliases keep mypy --strict quiet without ignores
        on_save: Callable[..., Any] = self._register_state_dict_hook
        on_load: Callable[..., Any] = self._register_load_state_dict_pre_hook
        on_save(_int8_state)
        on_load(_float_state, with_module=True)

    @property
    def proto(self) -> Any:
        """The QDQ graph (rebuilt from the float weights and the stored ranges if needed)."""
        if self._proto is None:
            self._proto = _rebuild(self.float_model, self._section)
        return self._proto

    def deployed_proto(self) -> Any:
        """The graph that ships: the quantizer's graph with :mod:`._qdq_passes`' rewrites."""
        if self._deployed is None:
            self._deployed = deployable(self.proto)
        return self._deployed

    def onnx_bytes(self) -> bytes:
        """The deployed graph, serialized."""
        return bytes(self.deployed_proto().SerializeToString())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ._onnx import session_from_bytes

        threads = torch.get_num_threads()
        if threads not in self._sessions:
            self._sessions[threads] = session_from_bytes(self.onnx_bytes(), threads)
        out = self._sessions[threads].run(None, {INPUT: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out).to(x.device)

    def __deepcopy__(self, memo: dict[int, Any]) -> OrtInt8Model:
        clone = OrtInt8Model(copy.deepcopy(self.float_model, memo), self._proto, self._section)
        clone._awaiting_tensors = self._awaiting_tensors
        for key, value in self.__dict__.items():
            if key.startswith("slimkit_"):
                setattr(clone, key, copy.deepcopy(value, memo))
        return clone


_INNER = "float_model."


def _int8_state(module: nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    """Store each weight ONNX Runtime quantized as its int8 values and per-channel scales,
    under the float model's own tensor names (an artifact reads like the float model's)."""
    assert isinstance(module, OrtInt8Model)
    for key in [k for k in state if k.startswith(prefix + _INNER)]:
        state[prefix + key[len(prefix) + len(_INNER) :]] = state.pop(key)
    if module._awaiting_tensors:  # a restored structure before its tensors load: shapes only
        for name in module._section.get("int8_weights", []):
            key = f"{prefix}{name}"
            if key in state:
                state[key] = torch.zeros(state[key].shape, dtype=torch.int8)
                state[key + SCALE_SUFFIX] = torch.zeros(state[key].shape[0])
        return
    for name, (q, scale) in stored_int8(module.float_model, module.proto).items():
        key = f"{prefix}{name}"
        state[key] = torch.from_numpy(q.copy())
        state[key + SCALE_SUFFIX] = torch.from_numpy(scale.copy())


def stored_int8(float_model: nn.Module, proto: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The int8 weights an artifact stores: those whose initializer is the parameter itself
    (same name and shape, per output channel); a transposed or reshaped weight stays float."""
    params = dict(float_model.named_parameters())
    out = {}
    for name, (q, scale, axis) in int8_weights(proto).items():
        weight = params.get(name)
        if weight is not None and tuple(weight.shape) == q.shape and axis == 0:
            scales = np.broadcast_to(np.asarray(scale, dtype=np.float32).reshape(-1), q.shape[:1])
            out[name] = (q, np.ascontiguousarray(scales))
    return out


def _float_state(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Dequantize stored int8 weights; the graph is rebuilt from them on first use."""
    assert isinstance(module, OrtInt8Model)
    module._proto = module._deployed = None
    module._awaiting_tensors = False
    module._sessions.clear()
    for key in [k for k in state if k.startswith(prefix) and not k.startswith(prefix + _INNER)]:
        state[prefix + _INNER + key[len(prefix) :]] = state.pop(key)
    for key in [k for k in state if k.endswith(SCALE_SUFFIX) and k.startswith(prefix)]:
        weight = key.removesuffix(SCALE_SUFFIX)
        q = state.get(weight)
        if q is None or q.dtype != torch.int8:
            raise ArtifactError(f"int8 scale {key!r} has no int8 weight beside it; re-create it")
        scale = state.pop(key).float()
        if scale.shape != q.shape[:1]:
            raise ArtifactError(f"int8 scale {key!r} does not match its weight; re-create it")
        state[weight] = q.float() * scale.reshape(-1, *([1] * (q.dim() - 1)))


def _example(section: dict[str, Any]) -> torch.Tensor:
    shape = section.get("input_shape")
    if not shape:
        raise ArtifactError("the int8 spec section lacks input_shape; re-create the artifact")
    return torch.zeros(2, *[int(s) for s in shape])


def float_graph(model: nn.Module, example: torch.Tensor) -> Any:
    """The float graph the quantizer reads: PyTorch's export with :mod:`._float_passes`'
    rewrites (spatial means as global average pools, N-D linear layers as Gemm)."""
    proto = export_proto(model, example)
    global_average_pools(proto)
    linear_layers_as_gemm(proto)
    return proto


def _rebuild(float_model: nn.Module, section: dict[str, Any]) -> Any:
    proto = float_graph(float_model, _example(section))
    ranges = {k: (float(v[0]), float(v[1])) for k, v in section.get("ranges", {}).items()}
    if not ranges:
        raise ArtifactError("the int8 spec section has no activation ranges; re-create it")
    missing = [name for name in float_tensors(proto) if name not in ranges]
    if missing:
        raise ArtifactError(
            f"the int8 spec section has no range for {len(missing)} activation(s) of the "
            f"model (first: {missing[0]!r}): the artifact is damaged; quantize the float "
            "model again"
        )
    return quantize_graph(
        proto,
        ranges,
        per_channel=bool(section["config"].get("per_channel", True)),
        reduce_range=bool(section.get("reduce_range", False)),
        exclude_nodes=_excluded_nodes(proto, tuple(section["config"].get("exclude", ()))),
    )


def quantize_float_model(
    float_model: nn.Module,
    cfg: Int8StaticConfig,
    batches: list[torch.Tensor],
    pairs: list[list[str]],
) -> tuple[OrtInt8Model, QuantReport]:
    """Export, calibrate and quantize an already-prepared float model."""
    from ._calib import run_batches

    run_batches(float_model, [batches[0][:2]])  # a shape mismatch is the data's error
    proto = float_graph(float_model, batches[0][:2])
    _check_mapped(float_model, proto)
    ranges = measure_ranges(proto, batches, cfg.observer, cfg.percentile)
    reduce = _reduce_range(cfg)
    q = quantize_graph(
        proto,
        ranges,
        per_channel=cfg.per_channel,
        reduce_range=reduce,
        exclude_nodes=_excluded_nodes(proto, cfg.exclude),
    )
    section = {
        "engine": ENGINE,
        "config": cfg.to_dict(),
        "input_shape": list(batches[0].shape[1:]),
        "reduce_range": reduce,
        "ranges": {k: [_f32(lo), _f32(hi)] for k, (lo, hi) in ranges.items()},
    }
    model = OrtInt8Model(float_model, q, section)
    section["int8_weights"] = _load_dequantized(model)
    return model, build_report(q, float_model, pairs, cfg.exclude)


def _f32(value: float) -> float:
    return float(np.format_float_positional(np.float32(value), unique=True))


def _check_mapped(model: nn.Module, proto: Any) -> None:
    if not layer_nodes(proto) and any(
        isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()
    ):
        raise UnsupportedOpError(
            "the exported graph's layers could not be mapped back to modules; export the "
            "model with plain nn.Conv2d / nn.Linear layers"
        )


@torch.no_grad()
def _load_dequantized(model: OrtInt8Model) -> list[str]:
    """Give the float model the weights the graph computes with (int8 values · scales);
    return the names of those weights."""
    params = dict(model.float_model.named_parameters())
    stored = stored_int8(model.float_model, model.proto)
    for name, (q, scale) in stored.items():
        shape = (-1, *([1] * (q.ndim - 1)))
        params[name].copy_(torch.from_numpy(q.astype(np.float32) * scale.reshape(shape)))
    return list(stored)


def quantize_ort_static(
    model: nn.Module, cfg: Int8StaticConfig, *, calib_data: Any = None, **_: Any
) -> tuple[OrtInt8Model, QuantReport]:
    """int8-static for ONNX Runtime: the handler :func:`slimkit.quantize` calls."""
    from ._graph import check_exclude
    from ._modules import WEIGHTED_TYPES

    check_exclude(model, cfg.exclude, WEIGHTED_TYPES)
    batches = calibration_batches(
        calib_data, model, batches=cfg.calib_batches, batch_size=cfg.calib_batch_size
    )
    float_model, pairs = prepare_float(model)
    return quantize_float_model(float_model, cfg, batches, pairs)


def quantize_ort_qat(
    model: nn.Module,
    cfg: Any,
    *,
    calib_data: Any = None,
    data: Any = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **_: Any,
) -> tuple[OrtInt8Model, QuantReport]:
    """QAT for ONNX Runtime: slimkit's fake-quant fine-tune (torch.fx), then the trained float
    weights quantized by ONNX Runtime's quantizer with freshly calibrated ranges."""
    from ._static import quantize_qat

    gm, _qat_report = quantize_qat(
        model, cfg, calib_data=calib_data, data=data, device=device, progress=progress
    )
    float_model, pairs = prepare_float(model)
    trained = qat_float_model(gm).state_dict()
    try:
        float_model.load_state_dict(trained)
    except RuntimeError as err:
        raise UnsupportedOpError(
            f"the QAT model's layers do not map back onto {type(model).__name__}: {err}"
        ) from None
    batches = calibration_batches(
        calib_data if calib_data is not None else data,
        model,
        batches=cfg.calib_batches,
        batch_size=cfg.calib_batch_size,
    )
    return quantize_float_model(float_model, cfg, batches, pairs)


def restore_ort_static(model: nn.Module, section: dict[str, Any]) -> OrtInt8Model:
    """The structure an int8 ONNX Runtime artifact's tensors fit (its graph rebuilt lazily)."""
    float_model, _ = prepare_float(model, structure_only=True)
    return OrtInt8Model(float_model, None, section)


def qat_float_model(gm: nn.Module) -> nn.Module:
    """The plain float model of a QAT-trained simulated int8 model: each int8 layer becomes a
    Conv/Linear with its dequantized weight, each activation quantizer an identity."""
    from ._modules import ActQuant, QuantWeight, set_module

    float_model = copy.deepcopy(gm).cpu().eval()
    for name, module in list(float_model.named_modules()):
        if isinstance(module, QuantWeight):
            set_module(float_model, name, _plain_layer(module))
        elif isinstance(module, ActQuant):
            set_module(float_model, name, nn.Identity())
    return float_model


def _plain_layer(layer: Any) -> nn.Module:
    weight = layer.float_weight().detach()
    bias = layer.bias is not None
    if layer.kind == "linear":
        plain: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    else:
        kw = layer.op_kwargs
        conv: Any = {"conv1d": nn.Conv1d, "conv2d": nn.Conv2d, "conv3d": nn.Conv3d}[layer.kind]
        plain = conv(
            weight.shape[1] * kw.get("groups", 1),
            weight.shape[0],
            tuple(weight.shape[2:]),
            bias=bias,
            **kw,
        )
    target: Any = plain
    with torch.no_grad():
        target.weight.copy_(weight)
        if bias:
            target.bias.copy_(layer.bias.detach())
    return plain
