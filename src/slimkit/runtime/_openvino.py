"""OpenVINO: reads the exported ONNX graph, QDQ int8 included (its quantize/dequantize pairs
become OpenVINO's low-precision ops), and saves its own IR (``model.xml`` + ``model.bin``).

Float graphs run in float32: on CPUs with bf16 units OpenVINO would otherwise compute them in
bf16, a precision change the user did not ask for (seed-cnn's logits moved by 1e-2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import MissingDependencyError
from ..measure import cpu_info
from ._base import DEFAULT_CHANNEL_MULTIPLE, ChannelMultiples, Runtime, register_runtime


def _openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise MissingDependencyError(
            "the openvino backend needs OpenVINO: pip install 'slimkit[openvino]'"
        ) from exc
    return openvino


def _config(threads: int, profile: bool = False, precision: str | None = "f32") -> dict[str, Any]:
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "PERF_COUNT": profile,
    }
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


class OpenVinoModule(nn.Module):
    """Runs an ONNX graph with OpenVINO on the CPU behind the ``nn.Module`` call interface.

    Args:
        path: the ``.onnx`` (or OpenVINO ``.xml``) file.
        threads: inference threads (one stream, latency mode: one request at a time).
        precision: OpenVINO's inference precision hint for float layers; ``None`` leaves
            OpenVINO's default (bf16 on CPUs that have it, as a user's plain call would get).
    """

    def __init__(
        self, path: str | os.PathLike[str], threads: int = 1, precision: str | None = "f32"
    ) -> None:
        super().__init__()
        ov = _openvino()
        core = ov.Core()
        self.path = str(path)
        self.compiled = core.compile_model(
            core.read_model(self.path), "CPU", _config(threads, precision=precision)
        )
        self.request = self.compiled.create_infer_request()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.request.infer({0: x.detach().cpu().float().numpy()})
        return torch.from_numpy(np.array(out[0]))


def _load(path: str | os.PathLike[str], threads: int) -> nn.Module:
    return OpenVinoModule(path, threads)


def _save(graph: Path, directory: Path) -> list[Path]:
    """Write OpenVINO's IR of ``graph`` as ``directory/model.xml`` + ``model.bin``."""
    ov = _openvino()
    target = directory / "model.xml"
    ov.save_model(ov.convert_model(str(graph)), str(target), compress_to_fp16=False)
    return [target, target.with_suffix(".bin")]


def _kernel_times(graph: Path, batch: int, threads: int, runs: int = 20) -> list[dict[str, Any]]:
    """OpenVINO's performance counters, averaged over ``runs`` calls after one warm-up.

    OpenVINO names a kernel after the ONNX node it came from, with ``/`` and a suffix
    (``node_conv2d/WithoutBiases``); the part before ``/`` is kept.
    """
    ov = _openvino()
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(graph)), "CPU", _config(threads, True))
    request = compiled.create_infer_request()
    shape = [batch, *[int(d) for d in compiled.input(0).get_partial_shape()[1:].to_shape()]]
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    request.infer({0: x})
    totals: dict[str, list[Any]] = {}
    for _ in range(runs):
        request.infer({0: x})
        for info in request.get_profiling_info():
            if info.status.name == "NOT_RUN":
                continue
            node = info.node_name.split("/")[0]
            row = totals.setdefault(node, [info.node_type, 0.0])
            row[1] += info.real_time.total_seconds() * 1000.0
    return [{"node": n, "op": op, "ms": ms / runs} for n, (op, ms) in totals.items()]


def _channel_multiples() -> ChannelMultiples:
    """int8: a multiple of 8 costs about what the multiple of 4 below it does, one of 16 about
    9% more than the multiple of 8 below it. fp32: its time grows with the channels within a
    block of 16, 10% from an odd multiple of 4 to the multiple of 8 above
    (``benchmarks/channel_multiples.py``, AVX-512 VNNI; elsewhere unmeasured: 8)."""
    fp32 = 4 if cpu_info()["avx512"] else DEFAULT_CHANNEL_MULTIPLE
    return ChannelMultiples(int8=8, fp32=fp32)


OPENVINO = register_runtime(
    Runtime(
        name="openvino",
        module="openvino",
        extra="openvino",
        load=_load,
        save=_save,
        kernel_times=_kernel_times,
        channel_multiples=_channel_multiples(),
    )
)
