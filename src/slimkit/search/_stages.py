"""The measuring stages of ``compress`` and the plan they lead to.

baseline (the original, measured) → sensitivity (each channel group pruned alone, and each
layer quantized alone) → plan (where the search starts; for the latency goal, whether the
first layer stays float and what each layer costs on the runtime).
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Splits
from ..export import save
from ..measure import (
    count_macs,
    count_nonzero_params,
    count_params,
    fixed_threads,
    interleaved_latency,
)
from ..measure import measure_latency as eager_latency
from ._config import CompressConfig
from ._heartbeat import Log
from ._latency import (
    LatencyTable,
    disjoint_batches,
    layer_shapes,
    measure_table,
    runtime_profiler,
    touched_layers,
)
from ._plan import (
    GroupCurve,
    Pruner,
    cost_fractions,
    measure_block_curves,
    measure_curves,
    plan_for_keep,
)
from ._run import RunDir
from ._trial import load_runtime

#: The structured cost in words, for the log.
COST_NAMES = {"macs": "MACs", "params": "parameters", "latency": "predicted latency"}


def baseline_stage(
    run: RunDir, model: nn.Module, splits: Splits, cfg: CompressConfig, log: Log
) -> None:
    """Measure the original: validation score, size, MACs, eager latency, and on a runtime
    the plain fp32 graph trials are timed against."""
    with run.stage("baseline", {}) as out:
        log("baseline: measuring the original model")
        path = save(model, run.path / "baseline.safetensors")
        x = splits.example_input(64)
        metric = cfg.scorer()
        out.update(
            val_accuracy=metric(model, splits.val),
            params=count_params(model),
            nonzero_params=count_nonzero_params(model),
            macs=count_macs(model, x[:1]),
            bytes=path.stat().st_size,
            latency_ms_b1=eager_latency(model, x[:1], threads=cfg.latency_threads),
            latency_ms_b64=eager_latency(model, x, threads=cfg.latency_threads),
            artifact=str(path),
        )
        if cfg.runtimes():
            out["reference"] = _reference(run, model, splits, cfg)
        log(
            f"baseline: val {metric.format(out['val_accuracy'])}, {out['bytes']:,} bytes, "
            f"{out['macs']:,} MACs, b64 {out['latency_ms_b64']:.2f} ms"
        )


def _reference(
    run: RunDir, model: nn.Module, splits: Splits, cfg: CompressConfig
) -> dict[str, Any]:
    """The original as a plain fp32 graph on the first runtime, timed: the yardstick trials
    are timed against (:func:`slimkit.search._trial.deployed_latency`)."""
    from ..quantize import export_fp32

    graph = export_fp32(model, run.path / "original-fp32.onnx", splits.example_input(1))
    runtime = cfg.runtimes()[0]
    runner = load_runtime(runtime, graph, cfg.latency_threads)
    x = splits.example_input(64)
    out: dict[str, Any] = {"graph": str(graph), "runtime": runtime}
    with fixed_threads(cfg.latency_threads):
        for key, batch in (("latency_ms_b1", x[:1]), ("latency_ms_b64", x)):
            out[key] = interleaved_latency([runner], batch, rounds=30)[0]
    return out


def sensitivity_stage(
    run: RunDir, pruner: Pruner, splits: Splits, cfg: CompressConfig, log: Log
) -> None:
    """Each channel group pruned alone at each ratio (no fine-tuning), and each layer
    quantized alone: the curves the plan allocates by."""
    with run.stage("sensitivity", {}) as out:
        log(
            f"sensitivity: {len(pruner.group_keys())} channel groups × {len(cfg.sensitivity_ratios)} ratios"
        )
        base, curves = measure_curves(
            pruner,
            splits,
            cfg.sensitivity_ratios,
            cfg.sensitivity_images,
            on_probe=lambda i, n: log(f"sensitivity: group {i}/{n}") if i % 10 == 0 else None,
            metric=cfg.scorer(),
        )
        out.update(
            subset_accuracy=base,
            images=cfg.sensitivity_images,
            curves=[c.to_dict() for c in curves],
        )
        out["quantization"] = _quant_sensitivity(pruner.model, splits, cfg, log)


def _quant_sensitivity(
    model: nn.Module, splits: Splits, cfg: CompressConfig, log: Log
) -> list[Any]:
    """Per-layer accuracy loss when quantized alone, where slimkit.quantize provides it."""
    if not cfg.int8:
        return []
    try:
        from ..quantize import sensitivity
    except ImportError:
        return []
    from ..quantize import Int8StaticConfig

    log("sensitivity: int8 per layer")
    metric = cfg.scorer()
    records = sensitivity(
        model,
        Int8StaticConfig(observer="percentile"),
        splits,
        batches=4,
        metric=metric.fn,
        lower_is_better=metric.lower_is_better,
    )
    return [r.to_dict() if hasattr(r, "to_dict") else r for r in records]


def _deploy_costs(runners: list[nn.Module], splits: Splits, cfg: CompressConfig) -> list[float]:
    """Each runner's cost as the deployment choice counts it: the geometric mean of its
    batch-1 and batch-64 times, timed interleaved; so the plan prices cuts on the runtime
    that the result will most likely be deployed on."""
    x = splits.example_input(64)
    with fixed_threads(cfg.latency_threads):
        b1 = interleaved_latency(runners, x[:1])
        b64 = interleaved_latency(runners, x)
    return [math.sqrt(one * many) for one, many in zip(b1, b64, strict=True)]


def _first_layer_probe(
    run: RunDir, model: nn.Module, splits: Splits, cfg: CompressConfig, log: Log
) -> tuple[list[str], str | None]:
    """Keep the first layer in float when that makes the int8 graph faster here; also return
    the runtime that ran the faster graph fastest (``None`` when nothing was timed).

    A first convolution over 1–3 input channels is a GEMM with a tiny inner dimension: its
    int8 kernel can cost more than the float one on CPUs without VNNI. Both graphs are timed
    side by side on every runtime of the backend (at batch 1 and 64, their geometric mean, as
    the deployment choice counts); the fastest pair decides for every trial.
    """
    if not (cfg.int8 and cfg.goal == "latency"):
        return [], None
    from ..quantize import quantizable_layers

    layers = quantizable_layers(model)
    if len(layers) < 2:
        return [], None
    graphs = [_probe_graph(run, model, splits, exclude) for exclude in ([], [layers[0]])]
    variants = [(graph, runtime) for graph in graphs for runtime in cfg.runtimes()]
    runners = [load_runtime(runtime, graph, cfg.latency_threads) for graph, runtime in variants]
    times = _deploy_costs(runners, splits, cfg)
    timed = sorted(zip(variants, times, strict=True), key=lambda pair: pair[1])  # fastest first
    (graph, runtime), _ = timed[0]
    faster = graph.name.endswith("first-float.onnx")
    ms = {f"{g.stem} {r}": round(t, 3) for (g, r), t in timed}
    log(
        f"plan: int8 latency (ms, geometric mean of b1 and b64) {ms}; "
        f"first layer {layers[0]!r} " + ("stays float" if faster else "is quantized too")
    )
    return ([layers[0]] if faster else []), runtime


def quantize_model(model: nn.Module, qcfg: Any, splits: Splits) -> nn.Module:
    """``model`` quantized by ``qcfg``, calibrated on ``splits``."""
    from ..quantize import quantize

    return quantize(model, qcfg, calib_data=splits, progress=False)


def probe_tag(keep_float: list[str]) -> str:
    """The name of the probe's graph for ``keep_float``: ``int8`` or ``first-float``."""
    return "first-float" if keep_float else "int8"


def _probe_graph(
    run: RunDir, model: nn.Module, splits: Splits, keep_float: list[str], reuse: bool = False
) -> Path:
    """The original's int8 ONNX graph in ``probe/`` (percentile calibration, ``keep_float``
    layers in float); with ``reuse``, the one already there if any."""
    from ..quantize import Int8StaticConfig

    artifact = run.path / "probe" / f"{probe_tag(keep_float)}.safetensors"
    onnx = artifact.with_suffix(".onnx")
    if not (reuse and onnx.exists()):
        qcfg = Int8StaticConfig(observer="percentile", exclude=tuple(keep_float))
        save(quantize_model(model, qcfg, splits), artifact)
    return onnx


def _layer_latency(
    run: RunDir,
    model: nn.Module,
    splits: Splits,
    cfg: CompressConfig,
    keep_float: list[str],
    fastest: str | None,
) -> tuple[str, dict[str, float]]:
    """Milliseconds per layer of the original model's int8 graph at batch 64 (the first layer
    float if the probe chose it; the latency goal's probe wrote it already), for the latency
    cost, on the runtime that runs that graph fastest here (``fastest``, from the probe, or
    timed now): a layer's price is what it costs where it will be deployed."""
    from ..runtime import layer_times

    onnx = _probe_graph(run, model, splits, keep_float, reuse=True)
    runtimes = [fastest] if fastest else cfg.runtimes()
    if len(runtimes) > 1:
        runners = [load_runtime(name, onnx, cfg.latency_threads) for name in runtimes]
        times = _deploy_costs(runners, splits, cfg)
        runtimes = [runtimes[times.index(min(times))]]
    threads = cfg.latency_threads or torch.get_num_threads()
    return runtimes[0], layer_times(runtimes[0], onnx, batch=64, threads=threads)


def _latency_table(
    pruner: Pruner,
    curves: list[GroupCurve],
    splits: Splits,
    cfg: CompressConfig,
    keep_float: list[str],
    runtime: str,
    log: Log,
) -> LatencyTable:
    """Every probed channel cut exported as an int8 graph and profiled per layer on
    ``runtime`` at batch 64: what each cut saves there, in milliseconds."""
    from ..quantize import Int8StaticConfig

    # Calibration only sets scales, which do not change the kernels' speed: two batches do.
    qcfg = Int8StaticConfig(observer="percentile", exclude=tuple(keep_float), calib_batches=2)
    cuts = [(c.key, r) for c in curves if c.kind == "channels" for r in c.ratios]
    base = layer_shapes(pruner.model)
    touched = [touched_layers(base, layer_shapes(pruner.prune({k: r}))) for k, r in cuts]
    batches = disjoint_batches(touched)
    threads = cfg.latency_threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="slimkit-cuts-") as work:
        names = (Path(work) / f"cut{i}.safetensors" for i in itertools.count())

        def graph_of(model: nn.Module) -> Path:
            artifact = next(names)
            save(quantize_model(model, qcfg, splits), artifact)
            return artifact.with_suffix(".onnx")

        log(f"plan: pricing {len(cuts)} channel cuts on {runtime} in {len(batches)} graphs")
        table = measure_table(
            pruner.model,
            pruner.layer_ms,
            (pruner.prune(dict(cuts[i] for i in batch)) for batch in batches),
            runtime_profiler(graph_of, runtime, batch=64, threads=threads),
            runtime,
            on_cut=lambda i: log(f"plan: {i} graphs profiled") if i % 10 == 0 else None,
        )
    return table


def plan_stage(
    run: RunDir,
    pruner: Pruner,
    curves: list[GroupCurve],
    splits: Splits,
    cfg: CompressConfig,
    log: Log,
) -> None:
    """The starting point of the search: the deepest structured cut (of the MACs, or of the
    parameters for ``cfg.cost == "params"``) the curves predict within budget.

    The curves are measured without fine-tuning, so they overstate the final loss; the plan
    allows a drop the budget counts recoverable (:meth:`Budget.recoverable`: twice the
    budget) and lets the search correct it. For the latency goal the plan also decides, by
    timing both, whether the first layer stays float.
    """
    with run.stage("plan", {}) as out:
        out["int8_keep_float"], fastest = _first_layer_probe(run, pruner.model, splits, cfg, log)
        if cfg.remove_blocks and pruner.blocks:
            log(f"plan: removing each of {len(pruner.blocks)} residual blocks alone")
            base = run.output("sensitivity")["subset_accuracy"]  # on the same images
            blocks = measure_block_curves(
                pruner, splits, cfg.sensitivity_images, base, metric=cfg.scorer()
            )
            out["block_curves"] = [c.to_dict() for c in blocks]
            curves = [*curves, *blocks]
        if cfg.cost == "params":
            out["params_fractions"] = cost_fractions(pruner, curves, "params")
            attach(curves, out["params_fractions"], "params_fraction")
        if cfg.cost == "latency":
            runtime, pruner.layer_ms = _layer_latency(
                run, pruner.model, splits, cfg, out["int8_keep_float"], fastest
            )
            out.update(layer_ms=pruner.layer_ms, layer_ms_runtime=runtime)
            slowest = sorted(pruner.layer_ms.items(), key=lambda kv: -kv[1])[:3]
            log(
                f"plan: int8 b64 time per layer on {runtime}, "
                f"{sum(pruner.layer_ms.values()):.1f} ms in all; "
                f"slowest {', '.join(f'{k} {v:.2f} ms' for k, v in slowest)}"
            )
            pruner.latency_table = _latency_table(
                pruner, curves, splits, cfg, out["int8_keep_float"], runtime, log
            )
            out["latency_table"] = pruner.latency_table.to_dict()
            out["latency_fractions"] = cost_fractions(pruner, curves, "latency")
            attach(curves, out["latency_fractions"], "latency_fraction")
        budget = cfg.budget
        best_keep, best_ratios = 1.0, {}
        for keep in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1):
            if keep < cfg.min_macs_keep:
                break

            ratios, fraction = plan_for_keep(pruner, curves, keep, cfg.cost)
            predicted = sum(c.drop_at(ratios.get(c.key, 0.0)) for c in curves)
            if not budget.recoverable(predicted) or fraction > keep + 0.05:
                break
            best_keep, best_ratios = keep, ratios
        best_keep = min(max(best_keep, cfg.min_macs_keep), cfg.max_macs_keep)
        out.update(initial_keep=best_keep, ratios=best_ratios, allowance=budget.allowance)
        log(f"plan: start the search at {best_keep:.0%} of the {COST_NAMES[cfg.cost]}")


def attach(curves: list[GroupCurve], fractions: dict[str, list[float]], field: str) -> None:
    """Set each curve's ``field`` (``params_fraction``, ``latency_fraction``) from the plan's
    saved fractions, keeping what a curve holds where the plan has none."""
    for curve in curves:
        setattr(curve, field, list(fractions.get(curve.key, getattr(curve, field))))


def initial_keep(plan: dict[str, Any]) -> float:
    """The plan's starting cut: a fraction of the structured cost to keep."""
    return float(plan["initial_keep"])
