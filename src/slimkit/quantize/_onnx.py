"""ONNX deployment: writing a model's ONNX graph and running graphs on ONNX Runtime.

The graphs come from PyTorch's exporter (:mod:`._export`): an int8 model's is ONNX Runtime's
own quantizer's QDQ graph (:mod:`._ort_int8`, with :mod:`._qdq_passes`' rewrites), a weight-only
model's the float graph with its int8 weights behind ``DequantizeLinear``, any other model's
the float graph. onnx and onnxruntime are optional (``pip install 'slimkit[onnx]'``).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_path
from ._export import INPUT, export_proto, require

#: ONNX Runtime's integer kernels (what its QDQ fusions turn a quantized node into).
INT8_KERNELS = {
    "QLinearConv",
    "QLinearMatMul",
    "QGemm",
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "QLinearConcat",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearSoftmax",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "ConvInteger",
    "MatMulInteger",
}
#: Float compute ops that should not survive ONNX Runtime's optimisation of an int8 graph.
FLOAT_COMPUTE = {"Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "Add", "GlobalAveragePool"}


def export_onnx(model: nn.Module, path: str | os.PathLike[str], example: torch.Tensor) -> Path:
    """Write ``model`` as an ONNX file (atomically) with a dynamic batch dimension.

    An int8 model (:func:`slimkit.quantize` for ONNX Runtime) writes its deployed QDQ graph, a
    weight-only model its int8 weights behind ``DequantizeLinear``, a float model its graph.

    Example:
        >>> export_onnx(quantized, "q.onnx", splits.example_input(1))
    """
    from ._modules import QuantWeight
    from ._ort_int8 import OrtInt8Model, qat_float_model
    from ._qdq_passes import int8_weight_initializers

    if isinstance(model, OrtInt8Model):
        proto = model.deployed_proto()
    elif any(isinstance(m, QuantWeight) for m in model.modules()):
        proto = export_proto(qat_float_model(model), example)
        int8_weight_initializers(proto, _int8_weights_of(model))
    else:
        proto = export_proto(model, example)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return Path(path)


def export_fp32(model: nn.Module, path: str | os.PathLike[str], example: torch.Tensor) -> Path:
    """Write ``model``'s plain float deployment: a copy with BatchNorm folded, as ONNX.

    ``model`` itself is not changed.
    """
    from ._fold import fold_batchnorm

    folded = copy.deepcopy(model).eval()
    fold_batchnorm(folded)
    return export_onnx(folded, path, example)


def _int8_weights_of(model: nn.Module) -> dict[str, tuple[Any, Any]]:
    from ._modules import QuantWeight

    return {
        f"{name}.weight": (m.weight.detach().numpy(), m.weight_scale.detach().numpy())
        for name, m in model.named_modules()
        if isinstance(m, QuantWeight) and not m.trainable
    }


def session(
    path: str | os.PathLike[str],
    threads: int = 1,
    optimized: str | None = None,
    profile_prefix: str | None = None,
) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations on (``profile_prefix``: with
    ONNX Runtime's profiler on, writing there).

    Its worker threads sleep between runs instead of spinning (ONNX Runtime's default): with
    several sessions and PyTorch in one process, a spinning pool takes the cores the next
    model needs. Timed interleaved on 2 cores (seed-cnn, batch 64, 4 identical fp32
    sessions), spinning made the sessions 1.9 to 9.9 ms instead of 1.2 ms, and eager PyTorch
    66 ms instead of 5.6 ms.

    Its graph optimisations are ONNX Runtime's defaults, so a graph runs here as it runs in a
    user's default session: what slimkit needs of the optimiser is written into the graph
    (:func:`._qdq_passes.pinned_requantize`).
    """
    return _session(str(path), threads, optimized, profile_prefix)


def _session(
    model: str | bytes,
    threads: int,
    optimized: str | None = None,
    profile_prefix: str | None = None,
) -> Any:
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized is not None:
        options.optimized_model_filepath = optimized
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(
        model,
        options,
        providers=["CPUExecutionProvider"],
    )


def session_from_bytes(model: bytes, threads: int = 1) -> Any:
    """:func:`session`'s settings for an in-memory graph."""
    return _session(model, threads)


class OrtModule(nn.Module):
    """Runs an ONNX file with ONNX Runtime behind the ``nn.Module`` call interface.

    Accuracy and latency helpers written for PyTorch models work on it unchanged.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        super().__init__()
        self.path = str(path)
        self.session = session(path, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {INPUT: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out)


def optimized_op_types(path: str | os.PathLike[str]) -> Counter[str]:
    """Op types of the graph ONNX Runtime actually runs, after its optimisations (QDQ fusions).

    In a well-formed int8 graph only :data:`INT8_KERNELS`, layout and pass-through ops remain:
    any of :data:`FLOAT_COMPUTE` means a round trip through float.
    """
    onnx = require("onnx")
    target = Path(path).with_suffix(".ort-optimized.onnx")
    try:
        session(path, optimized=str(target))
        return Counter(node.op_type for node in onnx.load(str(target)).graph.node)
    finally:
        target.unlink(missing_ok=True)
