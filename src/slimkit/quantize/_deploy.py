"""The deployed form of a quantized artifact: its ONNX file, and measuring it with ONNX Runtime."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..data import Splits
from ..errors import ArtifactError
from ..export import check_graph, read_spec
from ..measure import (
    Profile,
    count_macs,
    count_nonzero_params,
    count_params,
    evaluate_accuracy,
    measure_latency,
)
from ..models._registry import ARCH_ATTR
from ._api import ONNX_SCHEMES, QUANT_ATTR
from ._onnx import export_onnx


def example_input(model: nn.Module, batch_size: int = 1) -> torch.Tensor:
    """A zero input of the shape the model was quantized for."""
    section = getattr(model, QUANT_ATTR, {})
    shape = section.get("input_shape")
    if shape is None:
        kwargs = getattr(model, ARCH_ATTR, {}).get("kwargs", {})
        size = kwargs.get("image_size", 28)
        shape = [kwargs.get("in_channels", 1), size, size]
    return torch.zeros(batch_size, *shape)


def onnx_path(artifact: str | os.PathLike[str]) -> Path:
    """Where the deployable graph of ``q.safetensors`` lives: ``q.onnx``."""
    return Path(artifact).with_suffix(".onnx")


def write_deployment(model: nn.Module, artifact: Path) -> Path | None:
    """Write ``artifact``'s ``.onnx`` twin (atomically) if the model is an int8 ONNX Runtime
    model; :func:`slimkit.save` calls it before writing the artifact, which records its hash."""
    section = getattr(model, QUANT_ATTR, {})
    if section.get("backend") != "onnxruntime" or section.get("scheme") not in ONNX_SCHEMES:
        return None
    return export_onnx(model, onnx_path(artifact), example_input(model))


def deployed_graph(artifact: str | os.PathLike[str]) -> Path:
    """The ``.onnx`` graph saved with ``artifact``, checked against the hash it records.

    Raises:
        ArtifactError: if the graph is missing, or stale (not the one saved with ``artifact``).
    """
    path = onnx_path(artifact)
    if not path.is_file():
        raise ArtifactError(
            f"{path} does not exist; write it with `slimkit quantize ... --backend onnxruntime` "
            "(int8-static, qat or int8-weight-only)"
        )
    check_graph(Path(artifact), read_spec(artifact), path)
    return path


def profile_deployed(
    model: nn.Module,
    splits: Splits,
    *,
    artifact: str | os.PathLike[str],
    threads: int | None = None,
    accuracy: bool = True,
    latency_repeats: int = 10,
    runtime: str = "onnxruntime",
) -> Profile:
    """Measure the ONNX graph deployed beside ``artifact``, with the keys of a float profile.

    Accuracy and latency are ``runtime``'s (a name in :data:`slimkit.runtime.RUNTIMES`);
    ``bytes`` is the ``.onnx`` file's size; parameter and MAC counts are those of the
    (equivalent) PyTorch model.

    Raises:
        ArtifactError: if there is no ``.onnx`` file beside ``artifact``, or it is not the
            one ``artifact`` was saved with.
    """
    from ..runtime import RUNTIMES

    path = deployed_graph(artifact)
    threads = threads or torch.get_num_threads()
    runner = RUNTIMES.get(runtime).load(path, threads)
    example = splits.example_input(64)
    return Profile(
        test_accuracy=evaluate_accuracy(runner, splits.test) if accuracy else None,
        val_accuracy=evaluate_accuracy(runner, splits.val) if accuracy else None,
        params=count_params(model),
        nonzero_params=count_nonzero_params(model),
        macs=count_macs(model, example[:1]),
        bytes=path.stat().st_size,
        latency_ms_b1=measure_latency(runner, example[:1], repeats=latency_repeats),
        latency_ms_b64=measure_latency(runner, example, repeats=latency_repeats),
        threads=threads,
        device="cpu",
        backend=runtime,
    )
