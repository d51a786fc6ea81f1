"""Where the frozen teacher runs during distillation: eager PyTorch or an inference engine.

On a CPU the teacher's forward pass is most of a distillation step when the teacher is larger
than the student (resnet20 teaching seed-cnn-slim: 0.14 s of eager PyTorch per batch of 128
against 0.04 s in ONNX Runtime, one thread). The teacher is frozen, so nothing needs its
autograd graph: its fp32 deployment (BatchNorm folded, exported to ONNX) gives the same logits
up to float rounding. ``teacher_runtime="auto"`` times eager PyTorch and every installed
runtime on one training batch and keeps the fastest whose logits agree with eager PyTorch's.
Feature losses (hints, attention) read the teacher's intermediate layers through hooks, so they
always run it in PyTorch, as does a teacher on a GPU.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError

TORCH = "torch"
AUTO = "auto"
#: Largest |runtime − eager| logit difference accepted, relative to the largest |logit|.
AGREEMENT = 1e-3


@dataclass(frozen=True)
class TeacherRunner:
    """The teacher as the loss calls it, and where it runs.

    Attributes:
        forward: ``x -> logits`` without gradients.
        runtime: ``torch`` or a runtime name from :data:`slimkit.runtime.RUNTIMES`.
        seconds: measured seconds per training batch for each candidate (empty if not timed).
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    runtime: str
    seconds: dict[str, float]


def _median_seconds(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    forward(x)  # warm-up: allocations, lazy kernel selection
    times = []
    for _ in range(3):
        start = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _agrees(candidate: torch.Tensor, reference: torch.Tensor) -> bool:
    if candidate.shape != reference.shape:
        return False
    scale = float(reference.abs().max()) + 1e-6
    return float((candidate.float() - reference.float()).abs().max()) <= AGREEMENT * scale


def _load_runtime(
    name: str, teacher: nn.Module, batch: torch.Tensor, directory: Path
) -> Callable[[torch.Tensor], torch.Tensor]:
    from ..quantize import export_fp32
    from ..runtime import RUNTIMES

    runtime = RUNTIMES.get(name)
    if not runtime.available():
        raise ModelError(
            f"teacher_runtime={name!r} needs the {runtime.module} package: "
            f"pip install 'slimkit[{runtime.extra}]', or use teacher_runtime='auto'"
        )
    graph = directory / "teacher.onnx"
    if not graph.exists():
        export_fp32(teacher, graph, batch[:1])
    module = runtime.load(graph, torch.get_num_threads())
    return lambda x: module(x).to(x.device)


@contextlib.contextmanager
def teacher_runner(
    teacher: nn.Module,
    batch: torch.Tensor,
    choice: str,
    *,
    device: torch.device,
    uses_features: bool,
) -> Iterator[TeacherRunner]:
    """Yield the fastest faithful way to run ``teacher`` (in eval mode) on batches like ``batch``.

    Args:
        teacher: the frozen teacher, in eval mode on ``device``.
        batch: one training batch, used to export, check agreement and time.
        choice: ``auto``, ``torch`` or a runtime name.
        device: the training device; anything but the CPU runs the teacher in PyTorch.
        uses_features: feature losses need the PyTorch teacher's hooks.

    Raises:
        ModelError: if a named runtime is not installed, cannot run the teacher, or gives
            logits that differ from PyTorch's.
    """

    def eager(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits: torch.Tensor = teacher(x)
        return logits

    if choice == TORCH or uses_features or device.type != "cpu":
        yield TeacherRunner(eager, TORCH, {})
        return
    from ..runtime import available_runtimes

    names = [choice] if choice != AUTO else available_runtimes()
    reference = eager(batch)
    runners: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {TORCH: eager}
    with tempfile.TemporaryDirectory(prefix="slimkit-teacher-") as tmp:
        for name in names:
            try:
                runner = _load_runtime(name, teacher, batch, Path(tmp))
                faithful = _agrees(runner(batch), reference)
            except Exception as err:  # exporters and engines raise anything
                if choice != AUTO:
                    raise ModelError(f"the teacher cannot run on {name}: {err}") from err
                continue  # auto: an engine that cannot run this teacher is not a candidate
            if faithful:
                runners[name] = runner
            elif choice != AUTO:
                raise ModelError(
                    f"the teacher's logits on {name} differ from PyTorch's by more than "
                    f"{AGREEMENT:.0e} of their range; use teacher_runtime='torch'"
                )
        seconds = {name: _median_seconds(run, batch) for name, run in runners.items()}
        pool = [choice] if choice != AUTO else list(runners)
        best = min(pool, key=seconds.__getitem__)
        yield TeacherRunner(runners[best], best, seconds)
