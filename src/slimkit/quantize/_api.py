"""The quantization verb: one entry point, dispatched on the config's type through a registry."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._attrs import ARCH_ATTR, QUANT_ATTR, STRUCTURE_ATTR
from ..data import Splits
from ..errors import ArtifactError
from ._config import (
    BACKENDS,
    Bf16Config,
    Fp16Config,
    Int4WeightOnlyConfig,
    Int8DynamicConfig,
    Int8StaticConfig,
    Int8WeightOnlyConfig,
    QATConfig,
    config_from_dict,
    config_to_dict,
)
from ._export import require
from ._graph import RESTORED_REPORT_ATTR, QuantReport, act_quants
from ._ort_int8 import ENGINE, quantize_ort_qat, quantize_ort_static, restore_ort_static
from ._scheme import QuantizeHandler, RestoreHandler, Scheme, register_scheme, scheme_for
from ._static import quantize_qat, quantize_static, restore_static
from ._torch import require_torchao
from ._weight_only import (
    RESTORERS,
    quantize_bf16,
    quantize_dynamic,
    quantize_fp16,
    quantize_int4,
    quantize_weight_only,
)

#: Attribute of a quantized model holding its spec section (scheme, config, backend, report).
#: Schemes whose ONNX graph runs int8 kernels (static, QAT) or stores int8 weights (weight-only).
ONNX_SCHEMES = ("int8-static", "qat", "int8-weight-only")
#: Schemes that the torch backend runs on PyTorch's int8 kernels (PT2E, through torchao).
TORCH_INT8_SCHEMES = ("int8-static", "qat")
#: Attributes a quantized model inherits from its float model (architecture, pruned widths).
_INHERITED = (ARCH_ATTR, STRUCTURE_ATTR)

#: The int8 schemes for ONNX Runtime, by their handler: PyTorch's exporter, then ONNX
#: Runtime's quantizer (the handlers :data:`SCHEMES` holds are the torch backend's).
ORT_INT8_SCHEMES: dict[str, QuantizeHandler] = {
    "int8-static": quantize_ort_static,
    "qat": quantize_ort_qat,
}

#: Report keys that :func:`restore_static` recomputes.
_GRAPH_REPORT_KEYS = ("quantized", "folded")

register_scheme(
    "int8-static",
    Int8StaticConfig,
    quantize_static,
    restore_static,
    rebuilt_report_keys=_GRAPH_REPORT_KEYS,
)
register_scheme(
    "qat", QATConfig, quantize_qat, restore_static, rebuilt_report_keys=_GRAPH_REPORT_KEYS
)
register_scheme("int8-dynamic", Int8DynamicConfig, quantize_dynamic, RESTORERS[Int8DynamicConfig])
register_scheme(
    "int8-weight-only",
    Int8WeightOnlyConfig,
    quantize_weight_only,
    RESTORERS[Int8WeightOnlyConfig],
)
register_scheme(
    "int4-weight-only", Int4WeightOnlyConfig, quantize_int4, RESTORERS[Int4WeightOnlyConfig]
)
register_scheme("fp16", Fp16Config, quantize_fp16, RESTORERS[Fp16Config])
register_scheme("bf16", Bf16Config, quantize_bf16, RESTORERS[Bf16Config])


def register_quantize_handler(
    config_type: type, apply: QuantizeHandler, restore: RestoreHandler
) -> Scheme:
    """:func:`register_scheme` under the name ``config_type`` declares: its ``TAG``
    (``("scheme", name)``), else the ``scheme`` key of its default instance's ``to_dict()``.

    Raises:
        ValueError: if neither names the scheme; call :func:`register_scheme` with a name.
    """
    tag = getattr(config_type, "TAG", None)
    name = tag[1] if tag is not None else None
    if name is None:
        try:
            name = config_type().to_dict()["scheme"]
        except (TypeError, KeyError, AttributeError, ValueError):
            raise ValueError(
                f"{config_type.__name__} does not name its scheme: use "
                "register_scheme(name, config_type, apply, restore)"
            ) from None
    return register_scheme(str(name), config_type, apply, restore)


def quantize(
    model: nn.Module,
    cfg: Any,
    *,
    calib_data: Any = None,
    data: Splits | None = None,
    backend: str = "onnxruntime",
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> nn.Module:
    """Quantize ``model`` as ``cfg`` says; the input model is left untouched.

    The result is a PyTorch model that computes what the int8 (or low-precision) runtime
    computes; ``slimkit.save`` stores it with integer weights, and for ``backend="onnxruntime"``
    int8 models also writes the deployable ``.onnx`` graph. Layers that cannot be quantized stay
    in float and are listed in :func:`quantization_report`.

    Args:
        model: a trained float model (built by :func:`slimkit.create_model` or loaded).
        cfg: a scheme config, e.g. :class:`Int8StaticConfig` or :class:`QATConfig`.
        calib_data: calibration inputs for static schemes: ``Splits`` (its training split is
            read), a dataset, a tensor or an iterable of batches.
        data: training data for QAT's fine-tuning.
        backend: where the model will run: ``onnxruntime`` (default) or ``torch``. For
            int8-static and QAT, ``torch`` means PyTorch's own int8 kernels through torchao
            (:class:`TorchInt8Module`), and needs ``pip install 'slimkit[torchao]'``.
        device: device for QAT's fine-tuning.
        progress: show progress bars.

    Example:
        >>> splits = slimkit.load_data("fashion-mnist")
        >>> q = quantize(model, Int8StaticConfig(observer="percentile"), calib_data=splits)
        >>> slimkit.save(q, "q.safetensors")  # also writes q.onnx

    Raises:
        MissingDependencyError: for the onnxruntime backend without onnx, or the torch
            backend of int8-static/QAT without torchao; the message names the extra.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    scheme = scheme_for(cfg)
    name = scheme.name
    if backend == "onnxruntime" and name not in ONNX_SCHEMES:
        raise ValueError(
            f"scheme {name} has no onnxruntime deployment in slimkit (those are "
            f"{', '.join(ONNX_SCHEMES)}); use backend='torch'"
        )
    # A missing backend fails here, before calibrating or fine-tuning, not at save time.
    if backend == "onnxruntime":
        require("onnx")
    elif name in TORCH_INT8_SCHEMES:
        require_torchao()
    apply = scheme.apply
    if backend == "onnxruntime" and name in ORT_INT8_SCHEMES:
        apply = ORT_INT8_SCHEMES[name]
    quantized, report = apply(
        model, cfg, calib_data=calib_data, data=data, device=device, progress=progress
    )
    _inherit(model, quantized)
    section = {
        "scheme": name,
        "config": config_to_dict(cfg),
        "backend": backend,
        "input_shape": input_shape(calib_data if calib_data is not None else data),
        "report": report.to_dict(),
    }
    engine_section = getattr(quantized, "_section", None)
    if isinstance(engine_section, dict):
        engine_section.update(
            {k: v for k, v in section.items() if v is not None}
        )  # the graph's own record: ranges, engine, input shape
        section = engine_section
    setattr(quantized, QUANT_ATTR, section)
    return quantized


def _inherit(source: nn.Module, target: nn.Module) -> None:
    for attr in _INHERITED:
        if hasattr(source, attr):
            setattr(target, attr, getattr(source, attr))


def input_shape(data: Any) -> list[int] | None:
    """The shape of one example of ``data`` (Splits or a tensor batch), if it says."""
    if isinstance(data, Splits):
        return list(data.input_shape)
    if isinstance(data, torch.Tensor) and data.dim() > 1:
        return list(data.shape[1:])
    return None


def quantization_report(model: nn.Module) -> dict[str, Any]:
    """What :func:`quantize` quantized, folded and left in float (with reasons)."""
    return dict(getattr(model, QUANT_ATTR, {}).get("report", {}))


def _shortest_f32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (scales are float32)."""
    import numpy as np

    return float(np.format_float_positional(np.float32(value), unique=True))


def quantization_spec(model: nn.Module) -> dict[str, Any]:
    """The artifact spec section of a quantized model, with its activation parameters."""
    section = dict(getattr(model, QUANT_ATTR))
    if section.get("engine") == ENGINE:
        return section
    rebuilt = scheme_for(config_from_dict(section["config"])).rebuilt_report_keys
    report = section.get("report", {})
    section["report"] = {k: v for k, v in report.items() if k not in rebuilt}
    section["activations"] = {
        name: {"scale": _shortest_f32(float(aq.scale)), "zero_point": int(aq.zero_point)}
        for name, aq in act_quants(model).items()
    }
    return section


def _restore_activations(model: nn.Module, params: dict[str, Any]) -> None:
    for name, aq in act_quants(model).items():
        if name not in params:
            raise ArtifactError(
                f"the quantization spec lacks activation {name!r}; the artifact was written by "
                "another slimkit version or edited: re-create it"
            )
        aq.scale.fill_(params[name]["scale"])
        aq.zero_point.fill_(params[name]["zero_point"])


def restore_structure(model: nn.Module, section: dict[str, Any]) -> nn.Module:
    """Turn a fresh float model into the structure an artifact's quantized tensors fit.

    Activation scales and zero points come from the section itself; the caller then loads the
    artifact's tensors (integer weights, scales, biases) into the returned model.
    """
    cfg = config_from_dict(section["config"])
    ort_int8 = section.get("backend") == "onnxruntime" and section.get("scheme") in ORT_INT8_SCHEMES
    if ort_int8 and section.get("engine") != ENGINE:
        raise ArtifactError(
            "this int8 ONNX Runtime artifact was written by an older slimkit (its own graph "
            "writer); re-create it with this version's `slimkit quantize`"
        )
    if section.get("engine") == ENGINE:
        ort_model = restore_ort_static(model, section)
        _inherit(model, ort_model)
        setattr(ort_model, QUANT_ATTR, section)
        return ort_model
    restored = scheme_for(cfg).restore(model, cfg)
    _restore_activations(restored, section.get("activations", {}))
    _inherit(model, restored)
    section = dict(section)
    rebuilt: QuantReport | None = getattr(restored, RESTORED_REPORT_ATTR, None)
    if rebuilt is not None:
        section["report"] = {**rebuilt.to_dict(), **section.get("report", {})}
    setattr(restored, QUANT_ATTR, section)
    return restored
