"""ONNX Runtime: slimkit's default runtime (CPU execution provider, default optimisations)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ._base import Runtime, register_runtime


def _load(path: str | os.PathLike[str], threads: int) -> nn.Module:
    from ..quantize import OrtModule

    return OrtModule(path, threads=threads)


def _save(graph: Path, directory: Path) -> list[Path]:
    return []  # ONNX Runtime reads the exported graph itself


def _kernel_times(graph: Path, batch: int, threads: int) -> list[dict[str, Any]]:
    from ..quantize._ort_profile import kernel_times

    return kernel_times(graph, batch=batch, threads=threads)


ONNXRUNTIME = register_runtime(
    Runtime(
        name="onnxruntime",
        module="onnxruntime",
        extra="onnx",
        load=_load,
        save=_save,
        kernel_times=_kernel_times,
    )
)
