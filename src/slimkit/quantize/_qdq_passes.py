"""Rewrites around ONNX Runtime's quantizer that make its int8 graph faster on ONNX Runtime.

ONNX Runtime's ``quantize_static`` does not do these, and no maintained tool does them on a QDQ
graph; each is small and measured (``benchmarks/quantize.py`` compares the graphs). The rewrites
of the float graph before quantizing are in :mod:`._float_passes`.

- :func:`float_outputs` (deployed graph): the ``QuantizeLinear → DequantizeLinear`` pair the
  quantizer puts after the last ``Gemm``/``MatMul`` only rounds the logits to 256 levels;
  without it ONNX Runtime fuses the layer into an int8 kernel with a float output.
- :func:`padded_stems` (deployed graph): ONNX Runtime's int8 convolution is slow on a stem that
  reads 1-3 channels (a 9-deep inner product for a 3x3 kernel); padding the uint8 input with
  zero-point channels and the int8 weight with zeros gives the same outputs, bit for bit, on
  its fast path (seed-cnn's stem: 3.17 → 1.73 ms at batch 64, one thread).
- :func:`pinned_requantize` (deployed graph): ONNX Runtime's QDQ propagation, on in every
  default session, moves a ``QuantizeLinear`` that follows a float region up through
  max-pooling (and reshapes, transposes, slices), so a float stem's pool runs on uint8 NCHW
  data in its slow reference kernel. Giving that ``QuantizeLinear`` one scale per channel
  (all equal: the same numbers) is outside what the propagation moves, so the graph runs as
  quantized in any session (seed-cnn, first conv float, batch 64, one thread: 3.05 → 0.54 ms
  under a default session). ONNX Runtime's session option that turns propagation off cannot
  travel in the file.

The deployed-graph rewrites run on a copy: the graph the quantizer wrote stays the record from
which an artifact's int8 weights are read.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import numpy as np

from ._export import require

#: Input channels a thin int8 stem is padded to.
STEM_CHANNELS = 4
#: Ops ONNX Runtime's QDQ propagation moves a QuantizeLinear through (``qdq_propagation.cc``).
_PROPAGATING_OPS = {"MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice"}
#: Ops whose int8 kernel in ONNX Runtime can write float directly (no output QuantizeLinear).
_FLOAT_OUTPUT_OPS = {"Gemm", "MatMul"}


def _producers(proto: Any) -> dict[str, Any]:
    return {o: n for n in proto.graph.node for o in n.output}


def _consumers(proto: Any, tensor: str) -> list[Any]:
    return [n for n in proto.graph.node if tensor in n.input]


def _q_dq_after(producers: dict[str, Any], output: str) -> tuple[Any, Any, Any] | None:
    """(layer, QuantizeLinear, DequantizeLinear) when ``output`` is a Gemm/MatMul's, requantized."""
    dq = producers.get(output)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear":
        return None
    layer = producers.get(q.input[0])
    if layer is None or layer.op_type not in _FLOAT_OUTPUT_OPS:
        return None
    return layer, q, dq


def float_outputs(proto: Any) -> int:
    """Drop the ``QuantizeLinear → DequantizeLinear`` pair between a ``Gemm``/``MatMul`` and a
    graph output, in place; return how many outputs now leave their int8 kernel in float."""
    producers = _producers(proto)
    outputs = {o.name for o in proto.graph.output}
    dropped = 0
    for output in outputs:
        chain = _q_dq_after(producers, output)
        if chain is None:
            continue
        layer, q, dq = chain
        if len(_consumers(proto, q.output[0])) != 1 or _consumers(proto, layer.output[0]) != [q]:
            continue
        layer.output[0] = output
        proto.graph.node.remove(q)
        proto.graph.node.remove(dq)
        dropped += 1
    return dropped


def _attr(node: Any, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _thin_stem(proto: Any, node: Any, producers: dict[str, Any], inits: dict[str, Any]) -> bool:
    if node.op_type != "Conv" or _attr(node, "group", 1) != 1 or len(node.input) < 2:
        return False
    x_dq, w_dq = producers.get(node.input[0]), producers.get(node.input[1])
    if x_dq is None or w_dq is None or {x_dq.op_type, w_dq.op_type} != {"DequantizeLinear"}:
        return False
    x_q = producers.get(x_dq.input[0])
    weight = inits.get(w_dq.input[0])
    if x_q is None or x_q.op_type != "QuantizeLinear" or weight is None:
        return False
    if len(weight.dims) != 4:
        return False
    out_channels, in_channels = weight.dims[:2]
    return (
        weight.data_type == require("onnx").TensorProto.INT8
        and in_channels < STEM_CHANNELS
        and out_channels >= 16
        and out_channels % 8 == 0
        and len(x_dq.input) == 3  # the zero point pads the input
    )


def _pad_stem(proto: Any, node: Any, producers: dict[str, Any], inits: dict[str, Any]) -> None:
    onnx = require("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    x_dq, w_dq = producers[node.input[0]], producers[node.input[1]]
    weight = numpy_helper.to_array(inits[w_dq.input[0]])
    extra = STEM_CHANNELS - weight.shape[1]
    padded = np.pad(weight, ((0, 0), (0, extra), (0, 0), (0, 0)))
    name = node.name or node.output[0]
    pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64), f"{name}.pads")
    wide_w = numpy_helper.from_array(padded, f"{w_dq.input[0]}.padded")
    proto.graph.initializer.extend([pads, wide_w])
    x_scale, x_zero = x_dq.input[1], x_dq.input[2]
    nodes = [
        helper.make_node("Pad", [x_dq.input[0], pads.name, x_zero], [f"{name}.x_padded"]),
        helper.make_node(
            "DequantizeLinear", [f"{name}.x_padded", x_scale, x_zero], [f"{name}.x_wide"]
        ),
        helper.make_node("DequantizeLinear", [wide_w.name, *w_dq.input[1:]], [f"{name}.w_wide"]),
    ]
    nodes[2].attribute.extend(w_dq.attribute)
    position = list(proto.graph.node).index(node)
    for offset, new in enumerate(nodes):
        proto.graph.node.insert(position + offset, new)
    node.input[0], node.input[1] = f"{name}.x_wide", f"{name}.w_wide"


def _drop_unused(proto: Any) -> None:
    while True:
        used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
        dead = [n for n in proto.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            proto.graph.node.remove(node)
    used = {i for n in proto.graph.node for i in n.input}
    for init in [i for i in proto.graph.initializer if i.name not in used]:
        proto.graph.initializer.remove(init)


def padded_stems(proto: Any) -> int:
    """Pad the uint8 input and int8 weight of every thin int8 conv to :data:`STEM_CHANNELS`
    channels, in place; return how many were padded."""
    producers = _producers(proto)
    inits = {i.name: i for i in proto.graph.initializer}
    stems = [n for n in proto.graph.node if _thin_stem(proto, n, producers, inits)]
    for node in stems:
        _pad_stem(proto, node, producers, inits)
    if stems:
        _drop_unused(proto)
    return len(stems)


def _propagates(
    q: Any, producers: dict[str, Any], readers: Counter[str], outputs: set[str]
) -> bool:
    """Whether a default ONNX Runtime session moves ``q`` up into a float region.

    Mirrors ONNX Runtime: through propagating ops whose output has one reader and is no graph
    output, stopping at any other op; a chain that starts at a ``DequantizeLinear`` is an int8
    op already and is left alone.
    """
    node, moved = producers.get(q.input[0]), False
    while (
        node is not None
        and node.op_type in _PROPAGATING_OPS
        and readers[node.output[0]] == 1
        and node.output[0] not in outputs
    ):
        node, moved = producers.get(node.input[0]), True
    return moved and (node is None or node.op_type != "DequantizeLinear")


def _channel_counts(proto: Any) -> dict[str, int]:
    """Dimension 1 of every tensor whose shape inference gives it statically."""
    inferred = require("onnx").shape_inference.infer_shapes(proto).graph
    counts = {}
    for info in [*inferred.value_info, *inferred.input]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].HasField("dim_value"):
            counts[info.name] = int(dims[1].dim_value)
    return counts


def pinned_requantize(proto: Any) -> int:
    """Give one scale per channel (all equal) to every ``QuantizeLinear`` that ONNX Runtime's
    QDQ propagation would move into a float region, in place; return how many were pinned."""
    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    producers = _producers(proto)
    inits = {i.name: i for i in proto.graph.initializer}
    readers = Counter(name for node in proto.graph.node for name in node.input)
    outputs = {o.name for o in proto.graph.output}
    movable = [
        q
        for q in proto.graph.node
        if q.op_type == "QuantizeLinear"
        and len(q.input) == 3
        and q.input[1] in inits
        and q.input[2] in inits
        and numpy_helper.to_array(inits[q.input[1]]).size == 1
        and _propagates(q, producers, readers, outputs)
    ]
    counts = _channel_counts(proto) if movable else {}
    pinned = 0
    for q in movable:
        channels = counts.get(q.input[0])
        if channels is None:
            continue
        scale = numpy_helper.to_array(inits[q.input[1]])
        zero = numpy_helper.to_array(inits[q.input[2]])
        name = q.name or q.output[0]
        proto.graph.initializer.extend(
            [
                numpy_helper.from_array(
                    np.full(channels, scale.item(), scale.dtype), f"{name}.pinned_scale"
                ),
                numpy_helper.from_array(
                    np.full(channels, zero.item(), zero.dtype), f"{name}.pinned_zero_point"
                ),
            ]
        )
        q.input[1], q.input[2] = f"{name}.pinned_scale", f"{name}.pinned_zero_point"
        for attribute in [a for a in q.attribute if a.name == "axis"]:
            q.attribute.remove(attribute)
        q.attribute.append(onnx.helper.make_attribute("axis", 1))
        pinned += 1
    return pinned


def deployable(proto: Any) -> Any:
    """A copy of the quantizer's QDQ graph with the deployed-graph rewrites applied."""
    graph = copy.deepcopy(proto)
    float_outputs(graph)
    padded_stems(graph)
    pinned_requantize(graph)
    _drop_unused(graph)
    return graph


def int8_weight_initializers(proto: Any, weights: dict[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Store each float weight initializer named in ``weights`` as its int8 values behind a
    ``DequantizeLinear`` (per output channel), in place; return how many were replaced.

    ``weights`` maps an initializer name to (int8 values, scales). An initializer whose shape
    differs (the exporter transposed or folded it) stays float.
    """
    onnx = require("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    reads = []
    for init in list(proto.graph.initializer):
        if init.name not in weights:
            continue
        q, scale = weights[init.name]
        if tuple(init.dims) != q.shape or q.dtype != np.int8:
            continue
        scale = np.asarray(scale, np.float32).reshape(-1)
        per_channel = scale.size > 1
        proto.graph.initializer.remove(init)
        proto.graph.initializer.extend(
            [
                numpy_helper.from_array(q, f"{init.name}.int8"),
                numpy_helper.from_array(
                    scale if per_channel else scale[:1].reshape(()), f"{init.name}.scale"
                ),
            ]
        )
        read = helper.make_node(
            "DequantizeLinear", [f"{init.name}.int8", f"{init.name}.scale"], [init.name]
        )
        if per_channel:
            read.attribute.append(helper.make_attribute("axis", 0))
        reads.append(read)
    for read in reversed(reads):
        proto.graph.node.insert(0, read)
    return len(reads)
