"""Measuring a quantized artifact as deployed: its ONNX graph on a runtime."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..data import Splits
from ..measure import (
    Profile,
    count_macs,
    count_nonzero_params,
    count_params,
    evaluate_accuracy,
    measure_latency,
)
from ..quantize import deployed_graph
from ._base import RUNTIMES


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
