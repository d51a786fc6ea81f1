"""The export stage: the chosen candidate's files, its test score, and times beside the original.

The test set is read here, once. The original is timed eager and as a plain fp32 graph on
every runtime, interleaved with the result, so the speedups compare like with like.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_copy
from ..data import Splits
from ..measure import Metric, fixed_threads, interleaved_latency
from ._heartbeat import Log
from ._record import TrialRecord
from ._run import RunDir
from ._trial import Context, load_runtime, reload_deployed


def chosen_record(run: RunDir) -> TrialRecord:
    """The candidate the verify stage chose."""
    return TrialRecord.parse_list([run.output("verify")["chosen"]], run.state_path)[0]


def export_stage(run: RunDir, ctx: Context, log: Log) -> None:
    """Copy the chosen model (and graph) into the run, score it on the test set once, and
    time it side by side with the original's eager and plain deployments."""
    cfg = ctx.cfg
    with run.stage("export", {}) as out:
        chosen = chosen_record(run)
        files, runtime = _copy_files(run, chosen)
        threads = cfg.latency_threads or torch.get_num_threads()
        log("export: measuring the test set once")
        deployed = reload_deployed(chosen, cfg, ctx.model)
        base = run.output("baseline")
        baseline = _profile_keys(ctx.model, ctx.splits, base, "torch", threads, ctx.metric)
        result = _profile_keys(deployed, ctx.splits, chosen.profile(), runtime, threads, ctx.metric)
        log("export: timing the original (eager and on each runtime) and the result side by side")
        plain = _plain_deployments(run, ctx)
        x = ctx.splits.example_input(64)
        plain_ms: dict[str, dict[str, float]] = {name: {} for name in plain}
        with fixed_threads(cfg.latency_threads):
            for key, batch in (("latency_ms_b1", x[:1]), ("latency_ms_b64", x)):
                times = interleaved_latency([ctx.model, deployed, *plain.values()], batch)
                baseline[key], result[key] = times[0], times[1]
                for name, ms in zip(plain, times[2:], strict=True):
                    plain_ms[name][key] = ms
        out.update(
            baseline=baseline,
            result=result,
            plain=plain_ms,
            files=files,
            chosen_number=chosen.number,
        )


def _copy_files(run: RunDir, chosen: TrialRecord) -> tuple[dict[str, str], str]:
    """Copy the chosen artifact (and its graph, and the runtime's own form of it) into the
    run directory; returns the files and the runtime that runs the result."""
    artifact, graph = run.path / "model.safetensors", run.path / "model.onnx"
    files = {"artifact": str(artifact)}
    # The graph first, each file whole: an int8 artifact records its graph's hash, so a
    # crash between the two leaves a pair that profile refuses rather than misreads.
    if chosen.onnx:
        files["onnx"] = str(atomic_copy(chosen.onnx, graph))
    else:
        graph.unlink(missing_ok=True)  # an earlier export's graph is not this model's
    runtime = (chosen.runtime or "onnxruntime") if chosen.onnx else "torch"
    files.update(_runtime_files(run, runtime, graph))
    atomic_copy(chosen.artifact, artifact)
    return files, runtime


def _profile_keys(
    model: nn.Module,
    splits: Splits,
    measured: dict[str, Any],
    backend: str,
    threads: int,
    metric: Metric,
) -> dict[str, Any]:
    """The keys of ``slimkit profile --json``: ``measured`` (the baseline stage's output, or
    :meth:`TrialRecord.profile`) and the test score, measured now."""
    return {
        "test_accuracy": metric(model, splits.test),
        "val_accuracy": measured["val_accuracy"],
        "params": measured["params"],
        "nonzero_params": measured["nonzero_params"],
        "macs": measured["macs"],
        "bytes": measured["bytes"],
        "latency_ms_b1": measured["latency_ms_b1"],
        "latency_ms_b64": measured["latency_ms_b64"],
        "threads": threads,
        "device": "cpu",
        "backend": backend,
    }


def _plain_deployments(run: RunDir, ctx: Context) -> dict[str, nn.Module]:
    """The original model, BatchNorm folded, as fp32 ONNX on every runtime here: the plain
    deployment a user gets without compressing, the honest baseline of a speedup."""
    from ..quantize import export_fp32
    from ..runtime import available_runtimes

    runtimes = available_runtimes()
    if not runtimes:
        return {}
    # The baseline stage exported it as the trials' yardstick; a run without one (the torch
    # backend, or a baseline measured where no runtime was installed) exports it now.
    graph = Path(run.output("baseline").get("reference", {}).get("graph", ""))
    if not graph.is_file():
        graph = export_fp32(ctx.model, run.path / "original-fp32.onnx", ctx.pruner.example)
    return {f"fp32 {name}": load_runtime(name, graph, ctx.cfg.latency_threads) for name in runtimes}


def _runtime_files(run: RunDir, runtime: str, graph: Path) -> dict[str, str]:
    """The runtime's own deployable form of ``graph`` (OpenVINO: IR), written whole."""
    from ..runtime import RUNTIMES

    if runtime not in RUNTIMES:
        return {}
    with tempfile.TemporaryDirectory(dir=run.path, prefix=".export-") as work:
        written = RUNTIMES.get(runtime).save(graph, Path(work))
        files = {}
        for path in written:
            target = run.path / path.name
            os.replace(path, target)
            files[f"{runtime}{target.suffix}"] = str(target)
    return files
