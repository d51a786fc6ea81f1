"""Activation ranges of an ONNX float graph, measured by slimkit's observers in ONNX Runtime.

Every float tensor the graph's nodes read or write is exposed as an output of an unoptimised
session (the selection ONNX Runtime's own calibrators make), the calibration batches run
through it in chunks that bound the memory of the exposed activations, and each tensor's
observer (``minmax``, ``percentile``, ``mse``) chooses its range.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ._export import INPUT, require
from ._observers import make_observer

#: Bytes of exposed activations held at once while calibrating (a chunk of the batch).
CALIB_CHUNK_BYTES = 256 << 20


def float_tensors(proto: Any) -> list[str]:
    """Float tensors that nodes read or write, graph inputs included, initializers excluded
    (the selection ONNX Runtime's calibrators make)."""
    onnx = require("onnx")
    inferred = onnx.shape_inference.infer_shapes(proto)
    graph = inferred.graph
    infos = {vi.name: vi for vi in [*graph.value_info, *graph.output, *graph.input]}
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    names: dict[str, None] = {}
    for node in graph.node:
        for name in [*node.input, *node.output]:
            info = infos.get(name)
            if info is None or name in constants or not info.type.HasField("tensor_type"):
                continue
            if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                names[name] = None
    return list(names)


def _exposing(proto: Any, tensors: list[str]) -> Any:
    onnx = require("onnx")
    exposed = copy.deepcopy(proto)
    present = {o.name for o in exposed.graph.output}
    for name in tensors:
        if name not in present:
            exposed.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    return exposed


def _plain_session(proto: Any) -> Any:
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def measure_ranges(
    proto: Any, batches: list[torch.Tensor], observer: str, percentile: float
) -> dict[str, tuple[float, float]]:
    """Each float tensor's range as slimkit's ``observer`` chooses it over ``batches``."""
    tensors = float_tensors(proto)
    session = _plain_session(_exposing(proto, tensors))
    observers = {name: make_observer(observer, percentile) for name in tensors}
    first = session.run(tensors, {INPUT: batches[0][:1].numpy()})
    per_example = max(sum(o.nbytes for o in first), 1)
    chunk = max(1, CALIB_CHUNK_BYTES // per_example)
    for batch in batches:
        for part in torch.split(batch, chunk):
            for name, value in zip(
                tensors, session.run(tensors, {INPUT: part.numpy()}), strict=True
            ):
                observers[name].update(torch.from_numpy(value))
    return {name: obs.range() for name, obs in observers.items() if obs.seen}
