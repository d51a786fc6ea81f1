"""Per-layer time of a graph on a runtime: its kernels mapped back to the modules they compute."""

from __future__ import annotations

import os
from pathlib import Path

from ._base import RUNTIMES


def layer_times(
    runtime: str, graph: str | os.PathLike[str], batch: int = 64, threads: int = 1
) -> dict[str, float]:
    """Milliseconds per run that ``runtime`` spends in each weighted layer of ``graph``.

    Keys are module paths (``layer1.0.conv1``); the kernels a layer became (a fused int8
    convolution, its layout reorders) are summed. Element-wise kernels of their own (residual
    adds, transposes) are not attributed to any layer.
    """
    from ..quantize._ort_profile import attribute_kernels, layer_nodes

    kernels = RUNTIMES.get(runtime).kernel_times(Path(graph), batch, threads)
    return attribute_kernels(kernels, layer_nodes(graph))
