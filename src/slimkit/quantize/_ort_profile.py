"""Where an ONNX Runtime graph spends its time, per kernel and per source layer.

ONNX Runtime's profiler reports the kernels of the *optimised* graph: fused nodes
(QLinearConv, FusedConv, NCHWc convolutions) carry the name of the node they came from plus a
suffix (``_token_3``, ``_nchwc``). slimkit's writer records the module each Conv and Gemm
node translates in the node's ``doc_string``, so kernel times map back to module paths.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._export import layer_nodes as _layer_nodes_of
from ._export import require
from ._onnx import session


def kernel_times(
    path: str | os.PathLike[str], batch: int = 64, threads: int = 1, runs: int = 20
) -> list[dict[str, Any]]:
    """Milliseconds per run of every kernel of ``path`` on the CPU, from ONNX Runtime's profiler.

    The session is :func:`slimkit.quantize._onnx.session`'s (ONNX Runtime's default graph
    optimisations, no spinning). The input is uniform noise of the graph's input shape
    with ``batch`` rows; the first run is a warm-up, not counted.

    Returns:
        One ``{"node", "op", "ms"}`` dict per kernel of the optimised graph.
    """
    with tempfile.TemporaryDirectory(prefix="slimkit-ort-profile-") as work:
        profiled = session(path, threads, profile_prefix=str(Path(work) / "profile"))
        spec = profiled.get_inputs()[0]
        x = np.random.default_rng(0).random((batch, *spec.shape[1:])).astype(np.float32)
        for _ in range(runs + 1):
            profiled.run(None, {spec.name: x})
        events = json.loads(Path(profiled.end_profiling()).read_text())
    durations: dict[str, list[float]] = collections.defaultdict(list)
    ops: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"].removesuffix("_kernel_time")
            durations[name].append(event["dur"] / 1000.0)
            ops[name] = event["args"]["op_name"]
    # The first run (allocation, weight packing) is a warm-up: left out of the mean.
    return [
        {"node": n, "op": ops[n], "ms": float(np.mean(d[1:] if len(d) > 1 else d))}
        for n, d in durations.items()
    ]


def layer_nodes(path: str | os.PathLike[str]) -> dict[str, str]:
    """Name of every Conv/Gemm/MatMul node of ``path`` → the module it translates.

    Only nodes written by slimkit (their ``doc_string`` names the module) are listed.
    """
    return _layer_nodes_of(require("onnx").load(str(path), load_external_data=False))


def source_node(kernel: str, nodes: dict[str, str] | set[str]) -> str | None:
    """The original node an optimised kernel came from: the same name, or the longest one
    it extends with ``_`` and a suffix (``_token_3``, ``_nchwc``)."""
    matches = [n for n in nodes if kernel == n or kernel.startswith(n + "_")]
    return max(matches, key=len, default=None)


def layer_times(
    path: str | os.PathLike[str], batch: int = 64, threads: int = 1, runs: int = 20
) -> dict[str, float]:
    """Milliseconds per run that ONNX Runtime spends in each weighted layer of ``path``.

    Keys are module paths (``layer1.0.conv1``); the kernels a layer became (a QLinearConv, or
    a convolution and its layout reorder) are summed. Element-wise kernels of their own
    (residual adds, transposes) are not attributed to any layer.

    Example:
        >>> layer_times("q.onnx")["layer1.0.conv1"]
        2.9
    """
    return attribute_kernels(kernel_times(path, batch, threads, runs), layer_nodes(path))


def attribute_kernels(kernels: list[dict[str, Any]], nodes: dict[str, str]) -> dict[str, float]:
    """Sum :func:`kernel_times` rows per module, ``nodes`` being :func:`layer_nodes`' map."""
    times: dict[str, float] = collections.defaultdict(float)
    for row in kernels:
        source = source_node(row["node"], nodes)
        if source is not None:
            times[nodes[source]] += row["ms"]
    return dict(times)
