"""Rewrites of the float graph before ONNX Runtime's quantizer reads it, so that more of it
reaches ONNX Runtime's integer kernels, with fewer roundings. No maintained tool does these on
an exported graph; each is small:

- :func:`global_average_pools`: PyTorch exports ``adaptive_avg_pool2d(x, 1)`` as ``ReduceMean``
  over the spatial axes, which the quantizer leaves float (a dequantize, a float mean and a
  quantize in every SE block and before every classifier). As ``GlobalAveragePool`` it gets
  ONNX Runtime's int8 kernel.
- :func:`linear_layers_as_gemm`: a ``Linear`` on a 3-D or deeper input (every transformer
  projection) is exported as ``MatMul`` with a transposed weight, then ``Add`` of the bias. The
  quantizer rounds the product to uint8 before adding the bias and rounds again after (on a
  random-weight ViT-Tiny, 20-35% of those outputs then differ by one step from the same graph
  computed op by op, and LayerNorm amplifies it). Flattened to 2-D around a ``Gemm`` with the
  layer's own weight, the bias is added in int32 inside ONNX Runtime's QGemm, the product is
  rounded once, and the int8 weight keeps the module's name and layout (so an artifact stores
  it as int8 instead of in float).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ._export import require


def _constants(proto: Any) -> dict[str, np.ndarray]:
    numpy_helper = require("onnx").numpy_helper
    values = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _attr(node: Any, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _ranks(proto: Any) -> dict[str, int]:
    onnx = require("onnx")
    inferred = onnx.shape_inference.infer_shapes(proto)
    infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in infos
        if v.type.tensor_type.HasField("shape")
    }


def _spatial_axes(node: Any, constants: dict[str, np.ndarray]) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        axes = constants.get(node.input[1])
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    return next((list(a.ints) for a in node.attribute if a.name == "axes"), None)


def global_average_pools(proto: Any) -> int:
    """Turn spatial ``ReduceMean`` (NCHW, both spatial axes, keepdims) into ``GlobalAveragePool``
    in place; return how many were rewritten."""
    helper = require("onnx").helper
    constants, ranks = _constants(proto), _ranks(proto)
    rewritten = 0
    for i, node in enumerate(proto.graph.node):
        if node.op_type != "ReduceMean" or _attr(node, "keepdims", 1) != 1:
            continue
        rank = ranks.get(node.input[0])
        axes = _spatial_axes(node, constants)
        if rank != 4 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
            continue
        pool = helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), node.name)
        pool.doc_string = node.doc_string
        pool.metadata_props.extend(node.metadata_props)
        proto.graph.node[i].CopyFrom(pool)
        rewritten += 1
    return rewritten


def _bias_add(node: Any, consumers: dict[str, list[Any]], inits: dict[str, Any]) -> Any:
    """The ``Add`` that adds a constant bias of the product's width to ``node``'s output."""
    users = consumers.get(node.output[0], [])
    if len(users) != 1 or users[0].op_type != "Add":
        return None
    others = [i for i in users[0].input if i != node.output[0]]
    width = inits[node.input[1]].dims[1]
    if len(others) == 1 and others[0] in inits and list(inits[others[0]].dims) == [width]:
        return users[0]
    return None


def _as_gemm(
    node: Any, add: Any, inits: dict[str, Any], transposed: dict[str, str]
) -> tuple[list[Any], list[Any]]:
    """(nodes, initializers) computing ``node`` (and its bias ``add``) as a flattened Gemm.

    ``transposed`` maps a MatMul weight already rewritten to its Gemm weight: a layer called
    twice (or a tied weight) shares one initializer.
    """
    onnx = require("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    weight = numpy_helper.to_array(inits[node.input[1]])
    in_features, out_features = weight.shape
    name = node.name or node.output[0]
    module = node.doc_string
    tensors = []
    weight_name = transposed.get(node.input[1], "")
    if not weight_name:
        taken = set(inits) | set(transposed.values())
        preferred = f"{module}.weight"
        weight_name = preferred if module and preferred not in taken else f"{name}.w"
        transposed[node.input[1]] = weight_name
        tensors.append(numpy_helper.from_array(np.ascontiguousarray(weight.T), weight_name))
    tensors += [
        numpy_helper.from_array(np.array([-1, in_features], np.int64), f"{name}.flat"),
        numpy_helper.from_array(np.array([out_features], np.int64), f"{name}.width"),
        numpy_helper.from_array(np.array([0], np.int64), f"{name}.zero"),
        numpy_helper.from_array(np.array([-1], np.int64), f"{name}.last"),
    ]
    x = node.input[0]
    out = add.output[0] if add is not None else node.output[0]
    gemm_inputs = [f"{name}.x2d", weight_name]
    if add is not None:
        gemm_inputs.append(next(i for i in add.input if i != node.output[0]))
    gemm = helper.make_node("Gemm", gemm_inputs, [f"{name}.y2d"], name, transB=1)
    gemm.doc_string = module
    gemm.metadata_props.extend(node.metadata_props)
    nodes = [
        helper.make_node("Shape", [x], [f"{name}.shape"]),
        helper.make_node(
            "Slice", [f"{name}.shape", f"{name}.zero", f"{name}.last"], [f"{name}.lead"]
        ),
        helper.make_node("Concat", [f"{name}.lead", f"{name}.width"], [f"{name}.out"], axis=0),
        helper.make_node("Reshape", [x, f"{name}.flat"], [f"{name}.x2d"]),
        gemm,
        helper.make_node("Reshape", [f"{name}.y2d", f"{name}.out"], [out]),
    ]
    return nodes, tensors


def linear_layers_as_gemm(proto: Any) -> int:
    """Rewrite each ``MatMul`` by a 2-D constant weight of a 3-D+ input (and its bias ``Add``)
    as ``Reshape → Gemm → Reshape``, in place; return how many were rewritten."""
    inits = {i.name: i for i in proto.graph.initializer}
    ranks = _ranks(proto)
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in proto.graph.node:
        for i in n.input:
            consumers[i].append(n)
    targets = [
        n
        for n in proto.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in inits
        and len(inits[n.input[1]].dims) == 2
        and ranks.get(n.input[0], 0) >= 3
    ]
    transposed: dict[str, str] = {}
    for node in targets:
        add = _bias_add(node, consumers, inits)
        nodes, tensors = _as_gemm(node, add, inits, transposed)
        position = list(proto.graph.node).index(node)
        proto.graph.node.remove(node)
        if add is not None:
            proto.graph.node.remove(add)
        for offset, new in enumerate(nodes):
            proto.graph.node.insert(position + offset, new)
        proto.graph.initializer.extend(tensors)
    if targets:
        used = {i for n in proto.graph.node for i in n.input}
        for init in [i for i in proto.graph.initializer if i.name not in used]:
            proto.graph.initializer.remove(init)
    return len(targets)
