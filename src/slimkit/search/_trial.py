"""One candidate of the search: prune by plan, recover, sparsify, quantize, measure."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._attrs import ARCH_ATTR
from ..data import Splits
from ..errors import UnsupportedOpError
from ..export import load, save
from ..measure import (
    Metric,
    count_macs,
    count_nonzero_params,
    count_params,
    fixed_threads,
    interleaved_latency,
)
from ..prune import Global, UnstructuredConfig, prune
from ..train import TrainConfig, train
from ._config import CompressConfig
from ._plan import GroupCurve, Pruner, layer_widths, plan_for_keep
from ._record import Deployment, Structure, TrialRecord


@dataclass
class Context:
    """What every trial reads: the original model, the data, the curves, the baseline."""

    model: nn.Module
    splits: Splits
    cfg: CompressConfig
    pruner: Pruner
    curves: list[GroupCurve]
    baseline_val: float
    device: torch.device
    float_fallback: list[str] = field(default_factory=list)
    keep_float: list[str] = field(default_factory=list)
    baseline_ms: dict[str, float] = field(default_factory=dict)
    metric: Metric = field(default_factory=Metric)
    #: The original as a plain fp32 graph on a runtime, and its times from the baseline stage:
    #: the steadier yardstick for trial latencies (see :func:`deployed_latency`).
    reference: nn.Module | None = None
    reference_ms: dict[str, float] = field(default_factory=dict)
    #: ``kd`` or ``ce``: how trials recover (``cfg.recover``, or the recovery stage's choice).
    recovery: str = "kd"


def recover(model: nn.Module, ctx: Context, schedule: TrainConfig, desc: str = "recover") -> None:
    """Fine-tune ``model`` in place on ``schedule``: distilled from the original (kd) or with
    labels (ce)."""
    if schedule.epochs <= 0:
        return
    if ctx.recovery == "kd":
        from ..distill import DistillConfig, distill

        distill(
            model,
            ctx.model,
            ctx.splits,
            DistillConfig(train=schedule),
            device=ctx.device,
            progress=False,
        )
    else:
        train(model, ctx.splits, schedule, device=ctx.device, progress=False, desc=desc)
    model.cpu().eval()


def structured_step(ctx: Context, keep: float, seed: int) -> tuple[nn.Module, Structure]:
    """Prune to about ``keep`` of the MACs (or parameters, or predicted latency: ``cfg.cost``)
    with the sensitivity plan, then recover.

    A data-driven criterion (``taylor``, ``activation``, ``apoz``) scores the channels on the
    calibration batches the sensitivity stage scored them on (:attr:`Pruner.calib`).
    """
    ratios, _ = plan_for_keep(ctx.pruner, ctx.curves, keep, ctx.cfg.cost)
    latency = ctx.cfg.cost == "latency"
    if not ratios:
        unpruned = copy.deepcopy(ctx.model)
        return unpruned, Structure(
            ratios={},
            macs_fraction=1.0,
            params_fraction=1.0,
            latency_fraction=1.0 if latency else None,
            widths=layer_widths(unpruned),
        )
    config = ctx.pruner.config(ratios)
    pruned = prune(
        ctx.model,
        config,
        example_inputs=ctx.pruner.example,
        calib_data=ctx.pruner.calib,
        progress=False,
    )
    structure = Structure(
        ratios=ratios,
        macs_fraction=count_macs(pruned, ctx.pruner.example) / ctx.pruner.base_macs,
        params_fraction=count_params(pruned) / ctx.pruner.base_params,
        latency_fraction=ctx.pruner.latency_fraction(pruned) if latency else None,
        widths=layer_widths(pruned),  # what recovery leaves as it is
        removed_blocks=list(config.remove_blocks),
    )
    recover(pruned, ctx, replace(ctx.cfg.recover_train, seed=seed))
    return pruned, structure


def sparsify(model: nn.Module, ctx: Context, sparsity: float, seed: int) -> nn.Module:
    """Unstructured global magnitude sparsity on what remains, fine-tuned on the recovery
    schedule (for at least one epoch)."""
    if sparsity <= 0:
        return model
    recovery = ctx.cfg.recover_train
    schedule = replace(recovery, epochs=max(1, recovery.epochs), seed=seed)
    cfg = UnstructuredConfig(sparsity=sparsity, scope=Global())
    sparse = prune(model, cfg, data=ctx.splits, train=schedule, device=ctx.device, progress=False)
    return sparse.cpu().eval()


def quantize_step(
    model: nn.Module, ctx: Context, seed: int, allow_qat: bool
) -> tuple[nn.Module, str]:
    """int8 static (calibrated); when that misses the budget, keep the layers most sensitive
    to int8 in float (one, then two), then try quantization-aware training.

    ``ctx.keep_float`` layers (chosen once by a latency probe) stay float in every variant.
    """
    from ..quantize import Int8StaticConfig, QATConfig, quantize

    base = tuple(ctx.keep_float)

    def within(q: nn.Module) -> bool:
        return ctx.cfg.budget.holds(
            ctx.metric.drop(ctx.baseline_val, ctx.metric(q, ctx.splits.val))
        )

    def label(scheme: str, floats: tuple[str, ...]) -> str:
        return f"{scheme}, float: {', '.join(floats)}" if floats else scheme

    def static(floats: tuple[str, ...]) -> nn.Module:
        cfg = Int8StaticConfig(observer="percentile", exclude=floats)
        return quantize(model, cfg, calib_data=ctx.splits, progress=False)

    q, floats = static(base), base
    if not allow_qat or within(q):
        return q, label("int8-static", floats)
    for count in (1, 2):
        if len(ctx.float_fallback) < count:
            break
        floats = base + tuple(ctx.float_fallback[:count])
        q = static(floats)
        if within(q):
            return q, label("int8-static", floats)
    if not ctx.cfg.qat_train.epochs:
        return q, label("int8-static", floats)
    qat = QATConfig(
        observer="percentile", exclude=base, train=replace(ctx.cfg.qat_train, seed=seed)
    )
    try:
        trained = quantize(
            model, qat, data=ctx.splits, calib_data=ctx.splits, device=ctx.device, progress=False
        )
    except UnsupportedOpError:
        # QAT simulates int8 in a torch.fx trace; a model fx cannot trace (torchvision's
        # MobileNetV3 behind its input adapter) keeps its post-training result.
        return q, label("int8-static", floats)
    return trained.cpu().eval(), label("qat", base)


def run_trial(ctx: Context, params: dict[str, Any], out_dir: Path, seed: int) -> TrialRecord:
    """Build, save and measure one candidate; returns its record (validation only, no
    ``number`` yet)."""
    torch.manual_seed(seed)
    model, structured = structured_step(ctx, float(params.get(ctx.cfg.keep_param, 1.0)), seed)
    sparsity = float(params.get("sparsity", 0.0))
    model = sparsify(model, ctx, sparsity, seed)
    float_val = ctx.metric(model, ctx.splits.val)
    params_count, nonzero = count_params(model), count_nonzero_params(model)
    macs = count_macs(model, ctx.pruner.example)
    if ctx.cfg.int8:
        # Fallbacks can only win back what quantization lost: not worth it when the float
        # model is already over budget; QAT would also refill the zeros of a sparse model.
        allow_qat = sparsity == 0 and ctx.cfg.budget.holds(
            ctx.metric.drop(ctx.baseline_val, float_val)
        )
        artifact, deployed, how = _deploy_int8(model, ctx, seed, allow_qat, out_dir)
    else:
        artifact, deployed = save(model, out_dir / "model.safetensors"), model
        how = _Deployed(precision="fp32")
    val = ctx.metric(deployed, ctx.splits.val)
    latency = deployed_latency(deployed, ctx, ctx.splits.example_input(64))
    return TrialRecord(
        knobs=dict(params),
        structured=structured,
        sparsity=sparsity,
        float_val_accuracy=float_val,
        params_count=params_count,
        nonzero_params=nonzero,
        macs=macs,
        precision=how.precision,
        onnx=how.onnx,
        runtime=how.runtime,
        deployments=how.deployments,
        artifact=str(artifact),
        bytes=artifact.stat().st_size,
        val_accuracy=val,
        drop=ctx.metric.drop(ctx.baseline_val, val),
        latency_ms_b1_raw=latency["latency_ms_b1_raw"],
        latency_ms_b1=latency["latency_ms_b1"],
        latency_ms_b64_raw=latency["latency_ms_b64_raw"],
        latency_ms_b64=latency["latency_ms_b64"],
    )


@dataclass(frozen=True)
class _Deployed:
    """How a trial's model is deployed: the :class:`TrialRecord` fields ``precision``,
    ``onnx``, ``runtime`` and ``deployments``."""

    precision: str
    onnx: str | None = None
    runtime: str | None = None
    deployments: list[Deployment] | None = None


def _deploy_int8(
    model: nn.Module, ctx: Context, seed: int, allow_qat: bool, out_dir: Path
) -> tuple[Path, nn.Module, _Deployed]:
    """Quantize and save ``model``, and load its graph on the first runtime; for the latency
    goal, deploy whichever of its int8 and fp32 graphs runs fastest within the budget."""
    from ..quantize import onnx_path

    quantized, precision = quantize_step(model, ctx, seed, allow_qat=allow_qat)
    artifact = save(quantized, out_dir / "model.safetensors")
    onnx, runtime = str(onnx_path(artifact)), ctx.cfg.runtimes()[0]
    if ctx.cfg.goal == "latency":
        return _fastest_deployment(model, artifact, ctx, precision)
    deployed = load_runtime(runtime, onnx, ctx.cfg.latency_threads)
    return artifact, deployed, _Deployed(precision, onnx, runtime)


def deployed_latency(deployed: nn.Module, ctx: Context, x: torch.Tensor) -> dict[str, float]:
    """A trial's latency at batch 1 and ``len(x)``, in the conditions the baseline was timed in.

    A shared CPU's speed drifts by a third (eager resnet20 at batch 64: 112 ms in one
    benchmark run, 78 ms in another), more than what separates neighbouring trials. So the
    deployed model is timed interleaved with a yardstick, and its latency is the yardstick's
    time from the baseline stage times their ratio; ``*_raw`` keeps the time as measured.
    The yardstick is the original as a plain fp32 graph on a runtime when there is one: eager
    PyTorch takes ten times longer per call and is preempted more on a busy machine, and its
    noise moved the ratios of the same int8 graph by 2x between trials (seed-cnn, 1 thread).
    Without a baseline time in ``ctx`` the raw time is the latency.
    """
    yardstick, base_ms = (
        (ctx.reference, ctx.reference_ms)
        if ctx.reference is not None
        else (ctx.model, ctx.baseline_ms)
    )
    out: dict[str, float] = {}
    for key, batch in (("latency_ms_b1", x[:1]), ("latency_ms_b64", x)):
        with fixed_threads(ctx.cfg.latency_threads):
            ms, yardstick_ms = interleaved_latency([deployed, yardstick], batch)
        out[f"{key}_raw"] = ms
        baseline = base_ms.get(key)
        out[key] = baseline * ms / yardstick_ms if baseline else ms
    return out


def load_runtime(runtime: str, graph: str | Path, threads: int | None) -> nn.Module:
    """``graph`` running on ``runtime`` with the run's latency threads."""
    from ..runtime import RUNTIMES

    return RUNTIMES.get(runtime).load(graph, threads or torch.get_num_threads())


def reload_deployed(
    record: TrialRecord, cfg: CompressConfig, original: nn.Module | None = None
) -> nn.Module:
    """``record``'s model as deployed, read back from disk: its graph on its runtime, or
    its artifact (replayed onto a copy of ``original`` for a model built outside slimkit)."""
    if record.onnx:
        return load_runtime(record.runtime or "onnxruntime", record.onnx, cfg.latency_threads)
    if original is not None and getattr(original, ARCH_ATTR, None) is None:
        return load(record.artifact, model=copy.deepcopy(original))
    return load(record.artifact)


def _fastest_deployment(
    float_model: nn.Module, int8_artifact: Path, ctx: Context, int8_label: str
) -> tuple[Path, nn.Module, _Deployed]:
    """Deploy the fastest of the int8 and fp32 graphs on each runtime, within the budget.

    Which wins depends on the CPU (VNNI, AMX or neither), the model and the runtime: on an
    AVX2 CPU ONNX Runtime's fp32 kernels can outrun its int8 ones on a small CNN, and
    OpenVINO's int8 path differs from ONNX Runtime's, and a runtime's fixed cost per call
    can make it the fastest at batch 64 and the slowest at batch 1. Every pair is timed side
    by side at batch 1 and at batch 64 and scored on validation; the fastest within the budget
    by :attr:`Deployment.speed_cost` is kept (the one that loses least when none holds). The
    record's ``deployments`` keep every measurement.
    """
    from ..quantize import export_fp32, onnx_path

    fp32_path = export_fp32(
        float_model, int8_artifact.with_name("model-fp32.onnx"), ctx.pruner.example
    )
    options = [
        (precision, runtime, graph)
        for runtime in ctx.cfg.runtimes()
        for precision, graph in ((int8_label, onnx_path(int8_artifact)), ("fp32", fp32_path))
    ]
    runners = [
        load_runtime(runtime, graph, ctx.cfg.latency_threads) for _, runtime, graph in options
    ]
    with fixed_threads(ctx.cfg.latency_threads):
        times_b1 = interleaved_latency(runners, ctx.splits.example_input(1))
        times_b64 = interleaved_latency(runners, ctx.splits.example_input(64))
    measured = [
        Deployment(
            precision=precision,
            runtime=runtime,
            ms_b64=b64,
            drop=ctx.metric.drop(ctx.baseline_val, ctx.metric(runner, ctx.splits.val)),
            ms_b1=b1,
        )
        for (precision, runtime, _), runner, b1, b64 in zip(
            options, runners, times_b1, times_b64, strict=True
        )
    ]
    within = [m for m in measured if ctx.cfg.budget.holds(m.drop)]
    best = (
        min(within, key=lambda m: m.speed_cost) if within else min(measured, key=lambda m: m.drop)
    )
    runner = runners[measured.index(best)]
    if best.precision != "fp32":
        fp32_path.unlink()
        graph = onnx_path(int8_artifact)
        return int8_artifact, runner, _Deployed(best.label, str(graph), best.runtime, measured)
    artifact = save(float_model, int8_artifact.with_name("model-fp32.safetensors"))
    return artifact, runner, _Deployed(best.label, str(fp32_path), best.runtime, measured)
