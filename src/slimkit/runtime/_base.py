"""What a runtime is to slimkit: an engine that runs an exported ONNX graph on this machine.

One runtime per module, registered in :data:`RUNTIMES`; its name is then a valid
``--backend`` choice of ``compress`` and ``profile``, and ``--backend auto`` times it beside
the others. Each runtime is a maintained engine (ONNX Runtime, OpenVINO); slimkit only loads
the graph it exported and times it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .._registry import Registry


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """An engine that runs ONNX graphs on the CPU.

    Attributes:
        name: the ``--backend`` name.
        module: the Python package it needs (for :meth:`available`).
        extra: the pip extra that installs it (``pip install 'slimkit[<extra>]'``).
        load: ``(onnx_path, threads) -> nn.Module`` that runs the graph behind ``forward``.
        save: ``(onnx_path, directory) -> files`` writing the runtime's own deployable form
            beside the graph (ONNX Runtime: none, it reads the ``.onnx``).
        kernel_times: ``(onnx_path, batch, threads) -> [{"node", "op", "ms"}]``, the
            runtime's own profiler: milliseconds per run of every kernel it runs, each named
            after the ONNX node it came from (plus a suffix after ``_`` where it fused or
            reordered one).
    """

    name: str
    module: str
    extra: str
    load: Callable[[str | os.PathLike[str], int], nn.Module]
    save: Callable[[Path, Path], list[Path]]
    kernel_times: Callable[[Path, int, int], list[dict[str, Any]]]

    def available(self) -> bool:
        """Whether its package is installed here."""
        return importlib.util.find_spec(self.module) is not None


#: Runtimes by ``--backend`` name.
RUNTIMES: Registry[Runtime] = Registry("runtime")


def register_runtime(runtime: Runtime) -> Runtime:
    """Add ``runtime`` to :data:`RUNTIMES` (its name becomes a ``--backend`` choice)."""
    RUNTIMES.register(runtime.name, runtime)
    return runtime


def available_runtimes() -> list[str]:
    """Names of the registered runtimes whose package is installed, sorted."""
    return [name for name in RUNTIMES.names() if RUNTIMES.get(name).available()]
