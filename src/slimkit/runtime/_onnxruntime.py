"""ONNX Runtime: slimkit's default runtime (CPU execution provider, default optimisations)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..measure import cpu_info
from ._base import ChannelMultiples, Runtime, register_runtime


def _load(path: str | os.PathLike[str], threads: int) -> nn.Module:
    from ..quantize import OrtModule

    return OrtModule(path, threads=threads)


def _save(graph: Path, directory: Path) -> list[Path]:
    return []  # ONNX Runtime reads the exported graph itself


def _kernel_times(graph: Path, batch: int, threads: int) -> list[dict[str, Any]]:
    from ..quantize._ort_profile import kernel_times

    return kernel_times(graph, batch=batch, threads=threads)


def _channel_multiples() -> ChannelMultiples:
    """int8: a width that is no multiple of 4 runs 1.3x slower (median) than the next multiple
    of 4, and a multiple of 8 costs about what the multiple of 4 below it does (``benchmarks/channel_multiples.py``,
    AVX-512 VNNI). fp32: its convolutions work on blocks of MLAS's NCHWc size, 16 channels
    with AVX-512 and 8 without (MLAS ``platform.cpp``); a width between two blocks runs as
    slowly as the next block."""
    return ChannelMultiples(int8=8, fp32=16 if cpu_info()["avx512"] else 8)


ONNXRUNTIME = register_runtime(
    Runtime(
        name="onnxruntime",
        module="onnxruntime",
        extra="onnx",
        load=_load,
        save=_save,
        kernel_times=_kernel_times,
        channel_multiples=_channel_multiples(),
    )
)
