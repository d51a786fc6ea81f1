"""What ONNX Runtime's quantizer made of a model: its int8 weights, and what still runs in float.

Which layers are int8 is read from the QDQ graph (a weighted node whose weight is an int8
initializer behind ``DequantizeLinear``); which ops run in float from the graph ONNX Runtime
actually executes after its QDQ fusions, since a ``DequantizeLinear → op → QuantizeLinear``
wrapper only becomes an integer kernel where ONNX Runtime has one for that op.
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ._export import WEIGHTED_OPS, layer_nodes, require
from ._graph import QuantReport, matches

#: Ops of an optimised graph that only move, reshape, pool by maximum or (de)quantize data.
_DATA_MOVES = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "Shape",
    "Reshape",
    "Transpose",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Constant",
    "Gather",
    "Slice",
    "Cast",
    "CastLike",
    "Identity",
    "Expand",
    "Range",
    "Split",
    "Concat",
    "Pad",
    "MaxPool",
    "NhwcMaxPool",
    "Relu",
    "Clip",
    "Size",
    "ConstantOfShape",
}
#: Op-type prefixes of ONNX Runtime's integer kernels (QLinearConv, QGemm, MatMulInteger, ...).
_INTEGER_PREFIXES = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantize")


def _int8_weight_reads(proto: Any) -> Iterator[tuple[Any, Any]]:
    """(weighted node, the DequantizeLinear of its int8 weight initializer) of a QDQ graph."""
    inits = {i.name for i in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    for node in proto.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1:
            dq = producers.get(node.input[1])
            if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
                yield node, dq


def int8_weights(proto: Any) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Weight initializer name → (int8 values, scales, axis) of a QDQ graph's int8 weights."""
    numpy_helper = require("onnx").numpy_helper
    inits = {i.name: i for i in proto.graph.initializer}
    out = {}
    for _, dq in _int8_weight_reads(proto):
        q = numpy_helper.to_array(inits[dq.input[0]])
        if q.dtype == np.int8:
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            scale = numpy_helper.to_array(inits[dq.input[1]])
            out[dq.input[0].removesuffix("_quantized")] = (q, scale, axis)
    return out


def quantized_modules(proto: Any) -> list[str]:
    """Modules whose weighted node reads an int8 weight in the QDQ graph ``proto``, each once
    (a layer called twice has two nodes)."""
    nodes = layer_nodes(proto)
    found = [nodes[node.name] for node, _ in _int8_weight_reads(proto) if node.name in nodes]
    return list(dict.fromkeys(found))


def optimized_graph(proto: Any) -> Any:
    """The graph ONNX Runtime's CPU provider runs for ``proto``, after all its fusions."""
    from ._onnx import _session

    onnx = require("onnx")
    with tempfile.TemporaryDirectory(prefix="slimkit-ort-opt-") as work:
        target = Path(work) / "optimized.onnx"
        _session(proto.SerializeToString(), 1, optimized=str(target))
        return onnx.load(str(target))


def _source(kernel: str, names: set[str]) -> str | None:
    """The node an optimised kernel came from (same name, or the longest ``name_`` prefix)."""
    found = [n for n in names if kernel == n or kernel.startswith(n + "_")]
    return max(found, key=len, default=None)


def _where(node: Any) -> str:
    """The PyTorch call a node comes from: the innermost scope the exporter recorded."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            if isinstance(scopes, list) and scopes and scopes[-1]:
                return str(scopes[-1])
    return str(node.name)


def _is_float_compute(op_type: str) -> bool:
    return op_type not in _DATA_MOVES and not op_type.startswith(_INTEGER_PREFIXES)


def float_compute_nodes(proto: Any) -> list[dict[str, str]]:
    """The non-weighted ops that ONNX Runtime runs in float in the int8 graph ``proto``."""
    nodes = {n.name: n for n in proto.graph.node}
    weighted = set(layer_nodes(proto))
    out, seen = [], set()
    for kernel in optimized_graph(proto).graph.node:
        if not _is_float_compute(kernel.op_type):
            continue
        source = _source(kernel.name, set(nodes))
        if source is None or source in weighted or source in seen:
            continue
        seen.add(source)
        node = nodes[source]
        out.append(
            {
                "node": source,
                "op": f"{_where(node)} ({node.op_type})",
                "reason": "no int8 kernel in ONNX Runtime",
            }
        )
    return out


def build_report(
    proto: Any, model: nn.Module, pairs: list[list[str]], excluded: tuple[str, ...]
) -> QuantReport:
    """The :class:`QuantReport` of ``model``'s int8 graph ``proto``."""
    quantized = quantized_modules(proto)
    floats = []
    for module in dict.fromkeys(layer_nodes(proto).values()):
        if module not in quantized:
            reason = (
                "excluded by the config"
                if matches(module, excluded)
                else "left float by ONNX Runtime's quantizer"
            )
            kind = type(model.get_submodule(module)).__name__
            floats.append({"node": module, "op": f"{module} ({kind})", "reason": reason})
    floats += float_compute_nodes(proto)
    return QuantReport(quantized=quantized, float_ops=floats, folded=pairs)
