"""``compress``: the accuracy-budgeted search over pruning, distillation and quantization.

Stages (each checkpointed in the run directory, so ``resume=True`` continues after the last
finished one): baseline → sensitivity → plan → search (Optuna) → polish → verify → export →
report. Resumed with other options, a run redoes only the stages those options feed.
Only validation data is read until the export stage, which measures the test set once.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._device import resolve_device
from .._fit import check_fits
from .._io import atomic_copy
from ..data import Splits, load_data
from ..errors import AccuracyBudgetError, MissingDependencyError, SlimkitError
from ..export import load, save
from ..measure import (
    Metric,
    correct_mask,
    count_macs,
    count_nonzero_params,
    count_params,
    interleaved_latency,
    paired_drop,
)
from ..measure import measure_latency as eager_latency
from ..models._registry import ARCH_ATTR
from ._config import CompressConfig, check_runtimes, stage_inputs
from ._guards import RunInput, check_run_code
from ._heartbeat import BEAT_ATTRS, STALE_AFTER_S, StaleTrials, heartbeat
from ._lock import run_lock
from ._plan import (
    GroupCurve,
    Pruner,
    cost_fractions,
    measure_block_curves,
    measure_curves,
    plan_for_keep,
)
from ._run import RunDir, read_json, write_json
from ._trial import Context, deployment_label, goal_value, load_runtime, run_trial

Log = Callable[[str], None]
STUDY = "compress"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- stages ---------------------------------------------------------------------------------------


def _baseline(run: RunDir, model: nn.Module, splits: Splits, cfg: CompressConfig, log: Log) -> None:
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
    with _threads(cfg.latency_threads):
        for key, batch in (("latency_ms_b1", x[:1]), ("latency_ms_b64", x)):
            out[key] = interleaved_latency([runner], batch, rounds=30)[0]
    return out


def _sensitivity(
    run: RunDir, pruner: Pruner, splits: Splits, cfg: CompressConfig, log: Log
) -> None:
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


def _first_layer_probe(
    run: RunDir, model: nn.Module, splits: Splits, cfg: CompressConfig, log: Log
) -> tuple[list[str], str | None]:
    """Keep the first layer in float when that makes the int8 graph faster here; also return
    the runtime that ran the faster graph fastest (``None`` when nothing was timed).

    A first convolution over 1–3 input channels is a GEMM with a tiny inner dimension: its
    int8 kernel can cost more than the float one on CPUs without VNNI. Both graphs are timed
    side by side on every runtime of the backend; the fastest pair decides for every trial.
    """
    if not (cfg.int8 and cfg.goal == "latency"):
        return [], None
    from ..quantize import quantizable_layers

    layers = quantizable_layers(model)
    if len(layers) < 2:
        return [], None
    graphs = [str(_probe_graph(run, model, splits, exclude)) for exclude in ([], [layers[0]])]
    variants = [
        {"onnx": graph, "runtime": runtime, "latency_ms_b64": 0.0}
        for graph in graphs
        for runtime in cfg.runtimes()
    ]
    with _threads(cfg.latency_threads):
        timed = _remeasure_latency(variants, splits, cfg)
    faster = timed[0]["onnx"].endswith("first-float.onnx")
    ms = {f"{Path(v['onnx']).stem} {v['runtime']}": round(v["latency_ms_b64"], 3) for v in timed}
    log(
        f"plan: int8 b64 latency {ms}; first layer {layers[0]!r} "
        + ("stays float" if faster else "is quantized too")
    )
    return ([layers[0]] if faster else []), timed[0]["runtime"]


def quantize_model(model: nn.Module, qcfg: Any, splits: Splits) -> nn.Module:
    from ..quantize import quantize

    return quantize(model, qcfg, calib_data=splits, progress=False)


def _probe_tag(keep_float: list[str]) -> str:
    return "first-float" if keep_float else "int8"


def _probe_graph(
    run: RunDir, model: nn.Module, splits: Splits, keep_float: list[str], reuse: bool = False
) -> Path:
    """The original's int8 ONNX graph in ``probe/`` (percentile calibration, ``keep_float``
    layers in float); with ``reuse``, the one already there if any."""
    from ..quantize import Int8StaticConfig

    artifact = run.path / "probe" / f"{_probe_tag(keep_float)}.safetensors"
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
        with _threads(cfg.latency_threads):
            times = interleaved_latency(runners, splits.example_input(64))
        runtimes = [runtimes[times.index(min(times))]]
    threads = cfg.latency_threads or torch.get_num_threads()
    return runtimes[0], layer_times(runtimes[0], onnx, batch=64, threads=threads)


def _plan(
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
    allows twice the budget before recovery and lets the search correct it. For the latency
    goal the plan also decides, by timing both, whether the first layer stays float.
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
            _attach(curves, out["params_fractions"], "params_fraction")
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
            out["latency_fractions"] = cost_fractions(pruner, curves, "latency")
            _attach(curves, out["latency_fractions"], "latency_fraction")
        allowance = 2.0 * cfg.max_drop
        best_keep, best_ratios = 1.0, {}
        for keep in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1):
            if keep < cfg.min_macs_keep:
                break

            ratios, fraction = plan_for_keep(pruner, curves, keep, cfg.cost)
            predicted = sum(c.drop_at(ratios.get(c.key, 0.0)) for c in curves)
            if predicted > allowance or fraction > keep + 0.05:
                break
            best_keep, best_ratios = keep, ratios
        best_keep = min(max(best_keep, cfg.min_macs_keep), cfg.max_macs_keep)
        out.update(initial_keep=best_keep, ratios=best_ratios, allowance=allowance)
        log(f"plan: start the search at {best_keep:.0%} of the {_COST_NAMES[cfg.cost]}")


_COST_NAMES = {"macs": "MACs", "params": "parameters", "latency": "predicted latency"}


def _attach(curves: list[GroupCurve], fractions: dict[str, list[float]], field: str) -> None:
    """Set each curve's ``field`` (``params_fraction``, ``latency_fraction``) from the plan's
    saved fractions, keeping what a curve holds where the plan has none."""
    for curve in curves:
        setattr(curve, field, list(fractions.get(curve.key, getattr(curve, field))))


def initial_keep(plan: dict[str, Any]) -> float:
    """The plan's starting cut (runs saved before the params cost named it for MACs)."""
    return float(plan.get("initial_keep", plan.get("initial_macs_keep", 1.0)))


# -- the search -----------------------------------------------------------------------------------


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise MissingDependencyError("compress searches with Optuna: pip install optuna") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_name(run: RunDir) -> str:
    """The run's current Optuna study: a resumed run whose trials would now be built
    differently starts a new one (``compress-2``, ...), leaving the old trials where they are."""
    return str(run.state.get("study", {}).get("name", STUDY))


def trials_dir(run: RunDir) -> Path:
    name = study_name(run)
    return run.path / ("trials" if name == STUDY else "trials" + name.removeprefix(STUDY))


def _choose_study(run: RunDir, config: dict[str, Any]) -> None:
    inputs = stage_inputs(config, "study")
    # A run from before studies were recorded holds its trials in the default study.
    previous = stage_inputs(run.saved_config or config, "study")
    study = run.state.get("study") or {"name": STUDY, "inputs": previous}
    if study["inputs"] != inputs:
        number = int(study["name"].rpartition("-")[2]) if study["name"] != STUDY else 1
        study = {"name": f"{STUDY}-{number + 1}", "inputs": inputs}
    run.state["study"] = study
    run.save()


def open_study(run: RunDir, storage: str | None) -> Any:
    optuna = _optuna()
    if storage is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        backend = JournalFileBackend(str(run.path / "study.journal"))
        store: Any = JournalStorage(backend)
    else:
        store = storage
    return optuna.create_study(
        study_name=study_name(run), storage=store, direction="minimize", load_if_exists=True
    )


def _sampler(cfg: CompressConfig, completed: int) -> Any:
    """A TPE sampler seeded by the number of completed trials, so resumed runs repeat."""
    optuna = _optuna()

    return optuna.samplers.TPESampler(
        seed=cfg.seed + completed,
        n_startup_trials=max(2, min(4, cfg.trials // 3)),
    )


def _suggest(trial: Any, cfg: CompressConfig) -> dict[str, Any]:
    key = cfg.keep_param
    params = {key: trial.suggest_float(key, cfg.min_macs_keep, cfg.max_macs_keep)}
    if cfg.goal == "size":
        params["sparsity"] = trial.suggest_float("sparsity", 0.0, cfg.max_sparsity)
    return params


#: Below this width the frontier interval counts as found; later trials go to TPE.
FRONTIER_RESOLUTION = 0.02


def frontier_macs_keep(
    trials: list[tuple[float, float | None]], cfg: CompressConfig
) -> float | None:
    """The next fraction of MACs to try, halving the gap around the budget's frontier.

    ``trials`` are (macs_keep, drop) pairs, drop None for a trial still running. See
    :func:`frontier_point`; the interval is ``[cfg.min_macs_keep, cfg.max_macs_keep]``.
    """
    return frontier_point(trials, cfg.max_drop, cfg.min_macs_keep, cfg.max_macs_keep)


def frontier_point(
    trials: list[tuple[float, float | None]], max_drop: float, low: float, high: float
) -> float | None:
    """Bisection of a fraction kept (of MACs, or of weights) against the accuracy budget.

    ``trials`` are (kept, drop) pairs, drop None for a trial still running. A deeper cut
    (less kept) costs more accuracy, so the deepest plan within budget and the shallowest one
    over it below that bracket the frontier; the next trial goes half-way between them.
    Returns None once the bracket is narrower than :data:`FRONTIER_RESOLUTION` or its midpoint
    is already taken (another worker runs it): the sampler then explores instead.
    """
    done = [(keep, drop) for keep, drop in trials if drop is not None]
    within = [keep for keep, drop in done if drop <= max_drop]
    deepest_ok = min(within, default=high)
    # ``<=``: when nothing passed and the shallowest allowed cut (``high``) failed, the frontier
    # lies above the range; the bracket is empty rather than a search below a failure.
    over = [keep for keep, drop in done if drop > max_drop and keep <= deepest_ok]
    shallowest_bad = max(over, default=low)
    if deepest_ok - shallowest_bad < FRONTIER_RESOLUTION:
        return None
    middle = (deepest_ok + shallowest_bad) / 2
    if any(abs(keep - middle) < FRONTIER_RESOLUTION / 2 for keep, _ in trials):
        return None
    return middle


#: The size goal's first trial adds this unstructured sparsity (capped by ``max_sparsity``).
SIZE_START_SPARSITY = 0.8


def initial_params(cfg: CompressConfig, plan_keep: float) -> dict[str, float]:
    """The first trial: the sensitivity plan's structured cut, plus sparsity for size."""
    keep = min(max(plan_keep, cfg.min_macs_keep), cfg.max_macs_keep)
    if cfg.goal == "size":
        return {cfg.keep_param: keep, "sparsity": min(SIZE_START_SPARSITY, cfg.max_sparsity)}
    return {cfg.keep_param: keep}


def _next_params(study: Any, cfg: CompressConfig) -> dict[str, Any] | None:
    """Bisection on the frontier (of the structured cut for latency and macs; for size, of
    unstructured sparsity on top of the first trial's structured cut), then the sampler."""
    optuna = _optuna()
    states = optuna.trial.TrialState
    live = study.get_trials(deepcopy=False, states=(states.COMPLETE, states.RUNNING))

    def drop(t: Any) -> float | None:
        return t.user_attrs.get("drop") if t.state == states.COMPLETE else None

    key = cfg.keep_param
    if cfg.goal == "size":
        # The plan's structured cut removes what costs least per weight (depth first on
        # resnet56); sparsity, stored compactly, then thins what remains: find its frontier
        # on that cut, then let TPE mix the two.
        first = min(live, key=lambda t: t.number, default=None)
        if first is None or key not in first.params:
            return None
        cut = first.params[key]
        on_cut = [
            (1.0 - float(t.params["sparsity"]), drop(t))
            for t in live
            if "sparsity" in t.params and t.params.get(key) == cut
        ]
        keep = frontier_point(on_cut, cfg.max_drop, 1.0 - cfg.max_sparsity, 1.0)
        return None if keep is None else {key: cut, "sparsity": 1.0 - keep}
    trials = [(float(t.params[key]), drop(t)) for t in live if key in t.params]
    keep = frontier_macs_keep(trials, cfg)
    return None if keep is None else {key: keep}


def _same_plan_as(study: Any, ctx: Context, params: dict[str, Any]) -> Any:
    """A completed trial whose plan prunes exactly as ``params`` would, if there is one."""
    if params.get("sparsity", 0.0) > 0:
        return None
    key = ctx.cfg.keep_param
    ratios, _ = plan_for_keep(ctx.pruner, ctx.curves, float(params[key]), ctx.cfg.cost)
    widths = ctx.pruner.widths(ratios)
    optuna = _optuna()
    for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = other.user_attrs
        if attrs.get("sparsity", 0.0) == 0 and attrs.get("structured", {}).get("widths") == widths:
            return other
    return None


def search_loop(
    ctx: Context,
    run: RunDir,
    storage: str | None,
    log: Log,
    deadline: float | None,
    stale: StaleTrials | None = None,
) -> None:
    """Ask, run and tell trials until the study holds ``cfg.trials`` completed ones.

    Each trial beats while it runs; before each, trials a dead process left running are
    requeued (see :mod:`._heartbeat`).
    """
    stale = stale or StaleTrials()
    optuna = _optuna()
    cfg = ctx.cfg
    study = open_study(run, storage)
    states = optuna.trial.TrialState
    failures = 0
    while True:
        stale.requeue(study, log)
        trials = study.get_trials(deepcopy=False)
        completed = sum(t.state == states.COMPLETE for t in trials)
        running = sum(t.state == states.RUNNING for t in trials)
        if completed + running >= cfg.trials or failures > cfg.trials:
            return
        if deadline is not None and time.time() > deadline:
            log("search: time budget spent")
            return
        study.sampler = _sampler(cfg, completed)
        waiting = study.get_trials(deepcopy=False, states=(states.WAITING,))
        if not waiting and (proposal := _next_params(study, cfg)) is not None:
            study.enqueue_trial(proposal)
        trial = study.ask()
        params = _suggest(trial, cfg)
        out_dir = trials_dir(run) / f"{trial.number:04d}"
        try:
            with heartbeat(trial, stale.stale_after_s):
                # Seeded by its slot (trials completed before it), so a trial that is re-run
                # after an interruption trains exactly as it would have.
                twin = _same_plan_as(study, ctx, params)
                if twin is not None:
                    # Channel rounding maps nearby fractions to one structure: reuse its result.
                    record = {**twin.user_attrs, "params": params, "same_plan_as": twin.number}
                    for key in ("owner", *BEAT_ATTRS):
                        record.pop(key, None)
                else:
                    record = run_trial(ctx, params, out_dir, seed=cfg.seed + completed)
        except KeyboardInterrupt:
            study.tell(trial, state=states.FAIL)
            study.enqueue_trial(params)
            raise
        except SlimkitError as err:
            failures += 1
            trial.set_user_attr("error", str(err))
            study.tell(trial, state=states.FAIL)
            log(f"search: trial {trial.number} failed: {err}")
            continue
        if stale.lost(study, trial.number):
            log(f"search: trial {trial.number} ran again elsewhere meanwhile; result dropped")
            continue
        record["number"] = trial.number
        trial.set_constraint("accuracy_drop", record["drop"] - cfg.max_drop)
        for key, value in record.items():
            trial.set_user_attr(key, value)
        study.tell(trial, goal_value(record, cfg.goal))
        ok = "within budget" if record["drop"] <= cfg.max_drop else "over budget"
        log(
            f"search: trial {trial.number} keep {params[cfg.keep_param]:.0%} "
            f"{_COST_NAMES[cfg.cost]}"
            + (f", sparsity {params['sparsity']:.0%}" if "sparsity" in params else "")
            + f" → val {ctx.metric.format(record['val_accuracy'])} "
            f"(drop {record['drop']:+.4g}, {ok}), "
            f"{record['bytes']:,} B, b64 {record['latency_ms_b64']:.2f} ms"
            + (
                f" (same plan as trial {record['same_plan_as']})"
                if "same_plan_as" in record
                else ""
            )
        )


def trial_records(study: Any) -> list[dict[str, Any]]:
    optuna = _optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [
        {k: v for k, v in t.user_attrs.items() if k not in BEAT_ATTRS}
        for t in sorted(done, key=lambda t: t.number)
    ]


def busy_seconds(study: Any) -> float:
    """Wall time during which at least one trial of ``study`` ran, in seconds.

    Counted from the trials' own start and end times, so a search resumed after a stop, or run
    by several workers, is timed whole; a trial stopped before it finished (and run again)
    does not count.
    """
    spans = sorted(
        (t.datetime_start, t.datetime_complete)
        for t in study.get_trials(deepcopy=False)
        if t.datetime_start is not None and t.datetime_complete is not None
    )
    total, covered_to = 0.0, None
    for begin, end in spans:
        if covered_to is not None and end <= covered_to:
            continue
        begin = begin if covered_to is None else max(begin, covered_to)
        total += (end - begin).total_seconds()
        covered_to = end
    return total


# -- polish ---------------------------------------------------------------------------------------


def polish_candidates(records: list[dict[str, Any]], cfg: CompressConfig) -> list[dict[str, Any]]:
    """The plans worth a longer recovery: the best one within budget, then the next ones
    better on the goal that missed the budget by less than the budget itself (nearest first).

    Plans without any pruning are left out: there is nothing for the recovery to win back.
    """
    pruned = [r for r in records if r["structured"]["ratios"] or r.get("sparsity", 0.0) > 0]
    unique = {r["artifact"]: r for r in pruned}.values()
    within = _best_first(list(unique), cfg)
    best = within[:1]
    bar = goal_value(best[0], cfg.goal) if best else float("inf")
    near = [
        r
        for r in unique
        if cfg.max_drop < r["drop"] <= 2 * cfg.max_drop and goal_value(r, cfg.goal) < bar
    ]
    near.sort(key=lambda r: r["drop"])
    return (best + near)[: cfg.polish_trials]


def _with_polished(
    records: list[dict[str, Any]], polished: list[dict[str, Any]], cfg: CompressConfig
) -> list[dict[str, Any]]:
    """The candidates for verify: a polished plan within budget replaces its short-recovery
    original (and the trials that reused it)."""
    by_number = {r["number"]: r["artifact"] for r in records}
    replaced = {by_number[p["polished_from"]] for p in polished if p["drop"] <= cfg.max_drop}
    return [r for r in records if r["artifact"] not in replaced] + polished


def _polish(run: RunDir, ctx: Context, records: list[dict[str, Any]], log: Log) -> None:
    """Recover the candidates again for longer; each polished plan is kept in
    ``polish/records.json`` as soon as it is done, so an interrupted stage, or one redone
    with more ``polish_trials``, does not train it twice."""
    cfg = ctx.cfg
    cache_path = run.path / "polish" / "records.json"
    with run.stage("polish", {}) as out:
        polished: list[dict[str, Any]] = []
        if cfg.polish_epochs > 0:
            epochs = cfg.recover_epochs + cfg.polish_epochs
            longer = dataclasses.replace(ctx, cfg=dataclasses.replace(cfg, recover_epochs=epochs))
            cache: list[dict[str, Any]] = read_json(cache_path) if cache_path.exists() else []
            study = study_name(run)
            for record in polish_candidates(records, cfg):
                number = record["number"]
                key = {"study": study, "polished_from": number, "recover_epochs": epochs}
                done = [p for p in cache if all(p.get(k) == v for k, v in key.items())]
                if done:
                    log(f"polish: trial {number} was polished for {epochs} epochs before")
                    polished.append(done[0])
                    continue
                log(f"polish: trial {number} again, recovering for {epochs} epochs")
                out_dir = run.path / "polish" / study / f"{number:04d}-{epochs}ep"
                again = run_trial(longer, record["params"], out_dir, seed=cfg.seed)
                again.update(number=f"{number}+", **key)
                polished.append(again)
                cache.append(again)
                write_json(cache_path, cache)
                log(
                    f"polish: trial {number} → val {ctx.metric.format(again['val_accuracy'])} "
                    f"(drop {again['drop']:+.2f}, was {record['drop']:+.2f}), "
                    f"b64 {again['latency_ms_b64']:.2f} ms"
                )
        write_json(run.path / "polished.json", polished)
        out.update(trials=len(polished), file=str(run.path / "polished.json"))


# -- verify and back off --------------------------------------------------------------------------


def _best_first(records: list[dict[str, Any]], cfg: CompressConfig) -> list[dict[str, Any]]:
    feasible = [r for r in records if r["drop"] <= cfg.max_drop]
    return sorted(feasible, key=lambda r: (goal_value(r, cfg.goal), r["drop"]))


def _reload_deployed(
    record: dict[str, Any], cfg: CompressConfig, original: nn.Module | None = None
) -> nn.Module:
    if record.get("onnx"):
        return load_runtime(
            record.get("runtime", "onnxruntime"), record["onnx"], cfg.latency_threads
        )
    if original is not None and getattr(original, ARCH_ATTR, None) is None:
        # A model built outside slimkit: its structure is replayed onto a copy of it.
        return load(record["artifact"], model=copy.deepcopy(original))
    return load(record["artifact"])


def _remeasure_latency(
    candidates: list[dict[str, Any]],
    splits: Splits,
    cfg: CompressConfig,
    original: nn.Module | None = None,
) -> list[dict[str, Any]]:
    """Time the candidates again side by side; fastest first."""
    runners = [_reload_deployed(r, cfg, original) for r in candidates]
    for record, ms in zip(
        candidates, interleaved_latency(runners, splits.example_input(64)), strict=True
    ):
        record["latency_ms_b64_trial"] = record["latency_ms_b64"]
        record["latency_ms_b64"] = ms
    return sorted(candidates, key=lambda r: (r["latency_ms_b64"], r.get("drop", 0.0)))


def _verify(run: RunDir, ctx: Context, records: list[dict[str, Any]], log: Log) -> None:
    """Pick the best candidate that holds the budget on validation, re-measured from disk.

    A candidate holds when its drop plus ``margin_se`` standard errors of that drop (paired
    per example against the original) is within ``max_drop``: the search keeps the best of
    several noisy estimates, and without the margin the plan at the edge of the budget lost
    more on test (resnet56: validation drop 0.47, test 0.78; polished, 0.48 and 0.58).
    """
    cfg = ctx.cfg
    with run.stage("verify", {}) as out:
        reference = correct_mask(ctx.model, ctx.splits.val) if ctx.metric.is_top1 else None

        def check(record: dict[str, Any]) -> dict[str, Any]:
            deployed = _reload_deployed(record, cfg, ctx.model)
            if reference is not None:
                hits = correct_mask(deployed, ctx.splits.val)
                drop, error = paired_drop(reference, hits)
                value = 100.0 * float(hits.double().mean())
            else:  # the user's metric: one number, no per-example pairing
                value = ctx.metric(deployed, ctx.splits.val)
                drop, error = ctx.metric.drop(ctx.baseline_val, value), 0.0
            entry = {
                "number": record["number"],
                "val_accuracy": value,
                "drop": drop,
                "drop_se": error,
                "holds": drop + cfg.margin_se * error <= cfg.max_drop,
            }
            verdict = "holds" if entry["holds"] else "does not hold"
            log(
                f"verify: trial {record['number']} {verdict}: val "
                f"{ctx.metric.format(entry['val_accuracy'])} "
                f"(drop {drop:+.4g} ± {error:.2f}, margin {cfg.margin_se:g} s.e.)"
            )
            return entry

        checked: list[dict[str, Any]] = []
        ranked = _best_first(records, cfg)
        if cfg.goal == "latency" and len(ranked) > 1:
            with _threads(cfg.latency_threads):
                ranked = _remeasure_latency(ranked[:4], ctx.splits, cfg, ctx.model) + ranked[4:]
            log(
                "verify: the fastest candidates re-timed side by side: "
                + ", ".join(f"trial {r['number']} {r['latency_ms_b64']:.2f} ms" for r in ranked[:4])
            )
        for record in ranked:
            checked.append(check(record))
            if checked[-1]["holds"]:
                out.update(chosen=record, checked=checked, backoff=[])
                return
        backoff = []
        if cfg.int8:
            # The lightest compressed plan: no pruning, int8 only (QAT if PTQ misses).
            log("verify: no trial within budget; backing off to int8 without pruning")
            record = run_trial(ctx, {cfg.keep_param: 1.0}, run.path / "backoff", cfg.seed)
            record["number"] = "backoff"
            backoff.append(record)
            if record["drop"] <= cfg.max_drop:
                checked.append(check(record))
                if checked[-1]["holds"]:
                    out.update(chosen=record, checked=checked, backoff=backoff)
                    return
        best = min(records + backoff, key=lambda r: r["drop"]) if records or backoff else None
        margin = f" (plus {cfg.margin_se:g} standard errors)" if cfg.margin_se else ""
        unit = " points" if ctx.metric.is_top1 else ""
        raise AccuracyBudgetError(
            f"no plan kept validation {ctx.metric.name} within {cfg.max_drop}{unit}{margin} of "
            f"{ctx.baseline_val:.4g}; the closest lost {best['drop']:.4g}{unit} "
            f"(trial {best.get('number')}, artifact {best['artifact']}). Allow a larger "
            "--max-drop, a smaller --margin-se, more --trials or more recovery epochs"
            if best
            else "no trial completed",
            best=best,
        )


def _threads(threads: int | None) -> Any:
    from ..measure import fixed_threads

    return fixed_threads(threads)


# -- export ---------------------------------------------------------------------------------------


def _profile_keys(
    model: nn.Module,
    splits: Splits,
    record: dict[str, Any],
    backend: str,
    threads: int,
    metric: Metric,
) -> dict[str, Any]:
    return {
        "test_accuracy": metric(model, splits.test),
        "val_accuracy": record["val_accuracy"],
        "params": record.get("params_count", record.get("params")),
        "nonzero_params": record["nonzero_params"],
        "macs": record["macs"],
        "bytes": record["bytes"],
        "latency_ms_b1": record["latency_ms_b1"],
        "latency_ms_b64": record["latency_ms_b64"],
        "threads": threads,
        "device": "cpu",
        "backend": backend,
    }


def _export(run: RunDir, ctx: Context, log: Log) -> None:
    cfg = ctx.cfg
    with run.stage("export", {}) as out:
        chosen = run.output("verify")["chosen"]
        artifact, graph = run.path / "model.safetensors", run.path / "model.onnx"
        files = {"artifact": str(artifact)}
        # The graph first, each file whole: an int8 artifact records its graph's hash, so a
        # crash between the two leaves a pair that profile refuses rather than misreads.
        if chosen.get("onnx"):
            files["onnx"] = str(atomic_copy(chosen["onnx"], graph))
        else:
            graph.unlink(missing_ok=True)  # an earlier export's graph is not this model's
        runtime = chosen.get("runtime", "onnxruntime") if chosen.get("onnx") else "torch"
        files.update(_runtime_files(run, runtime, graph))
        atomic_copy(chosen["artifact"], artifact)
        threads = cfg.latency_threads or torch.get_num_threads()
        base = run.output("baseline")
        log("export: measuring the test set once")
        deployed = _reload_deployed(chosen, cfg, ctx.model)
        baseline = _profile_keys(ctx.model, ctx.splits, base, "torch", threads, ctx.metric)
        result = _profile_keys(deployed, ctx.splits, chosen, runtime, threads, ctx.metric)
        log("export: timing the original (eager and on each runtime) and the result side by side")
        plain = _plain_deployments(run, ctx)
        x = ctx.splits.example_input(64)
        plain_ms: dict[str, dict[str, float]] = {name: {} for name in plain}
        with _threads(cfg.latency_threads):
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
            chosen_number=chosen["number"],
        )


def _plain_deployments(run: RunDir, ctx: Context) -> dict[str, nn.Module]:
    """The original model, BatchNorm folded, as fp32 ONNX on every runtime here: the plain
    deployment a user gets without compressing, the honest baseline of a speedup."""
    from ..quantize import export_fp32
    from ..runtime import available_runtimes

    runtimes = available_runtimes()
    if not runtimes:
        return {}
    # The baseline stage exported it as the trials' yardstick; a run without one exports it.
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


def _chosen_check(run: RunDir) -> dict[str, Any]:
    verify = run.output("verify")
    number = verify["chosen"]["number"]
    return next((c for c in verify.get("checked", []) if c["number"] == number), {})


def _deployment(chosen: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Which runtime and precision won, and by how much over each alternative (batch 64)."""
    measured = chosen.get("deployments", [])
    won = next((m for m in measured if deployment_label(m) == chosen["precision"]), None)
    return {
        "runtime": result["backend"],
        "precision": chosen["precision"],
        "alternatives": [
            {**m, "slower_than_chosen": m["ms_b64"] / won["ms_b64"]} for m in measured if m != won
        ]
        if won
        else [],
    }


def _versus_plain(plain: dict[str, dict[str, float]], result: dict[str, Any]) -> dict[str, Any]:
    """Speedups over the fastest plain deployment of the original, at batch 1 and 64."""
    if not plain:
        return {}
    out: dict[str, Any] = {}
    for batch in ("b1", "b64"):
        name = min(plain, key=lambda n: plain[n][f"latency_ms_{batch}"])
        out[f"speedup_{batch}_vs_plain"] = (
            plain[name][f"latency_ms_{batch}"] / result[f"latency_ms_{batch}"]
        )
        out[f"plain_{batch}"] = name
    return out


def _summary(run: RunDir, cfg: CompressConfig) -> dict[str, Any]:
    export = run.output("export")
    chosen = run.output("verify")["chosen"]
    baseline, result = export["baseline"], export["result"]
    metric = cfg.scorer()
    return {
        "baseline": baseline,
        "result": result,
        "budget": {
            "max_drop": cfg.max_drop,
            "val_drop": metric.drop(baseline["val_accuracy"], result["val_accuracy"]),
            "val_drop_se": _chosen_check(run).get("drop_se"),
            "margin_se": cfg.margin_se,
            "test_drop": metric.drop(baseline["test_accuracy"], result["test_accuracy"]),
            "metric": metric.to_dict(),
        },
        "goal": cfg.goal,
        "plan": {
            "macs_keep": chosen["params"].get("macs_keep"),
            "params_keep": chosen["params"].get("params_keep"),
            "latency_keep": chosen["params"].get("latency_keep"),
            "macs_fraction": chosen["structured"].get("macs_fraction"),
            "ratios": chosen["structured"]["ratios"],
            "removed_blocks": chosen["structured"].get("removed_blocks", []),
            "widths": chosen["structured"].get("widths", {}),
            "sparsity": chosen["sparsity"],
            "precision": chosen["precision"],
        },
        "deployment": _deployment(chosen, result),
        "plain": export.get("plain", {}),
        "ratios": {
            "speedup_b64": baseline["latency_ms_b64"] / result["latency_ms_b64"],
            **_versus_plain(export.get("plain", {}), result),
            "smaller": baseline["bytes"] / result["bytes"],
            "macs": baseline["macs"] / max(result["macs"], 1),
        },
        "stages": run.stage_times(),
        "files": {
            **export["files"],
            "report": str(run.path / "report.html"),
            "summary": str(run.path / "summary.json"),
        },
        "config": cfg.to_dict(),
    }


# -- entry points ---------------------------------------------------------------------------------


def _context(
    run: RunDir, model: nn.Module, splits: Splits, cfg: CompressConfig, device: torch.device
) -> Context:
    pruner = Pruner.build(
        model, splits, cfg.importance, cfg.channel_multiple, min_channels=cfg.channel_floor
    )
    baseline = run.output("baseline")
    ctx = Context(
        model,
        splits,
        cfg,
        pruner,
        [],
        baseline["val_accuracy"],
        device,
        baseline_ms={k: baseline[k] for k in ("latency_ms_b1", "latency_ms_b64")},
        metric=cfg.scorer(),
    )
    reference = baseline.get("reference")
    # Another host without the baseline's runtime times trials against eager PyTorch instead.
    if reference and reference["runtime"] in cfg.runtimes() and Path(reference["graph"]).is_file():
        ctx.reference = load_runtime(reference["runtime"], reference["graph"], cfg.latency_threads)
        ctx.reference_ms = {k: reference[k] for k in ("latency_ms_b1", "latency_ms_b64")}
    _read_sensitivity(run, ctx)
    return ctx


def _read_sensitivity(run: RunDir, ctx: Context) -> None:
    """Curves for the plan; the layers int8 hurts most, for the float fallback."""
    if not run.done("sensitivity"):
        return
    output = run.output("sensitivity")
    ranked = output.get("quantization", [])
    # Runs from before the probe moved to the plan stage kept its answer with the curves.
    plan = run.output("plan") if run.done("plan") else {}
    ctx.curves = [
        GroupCurve.from_dict(c) for c in [*output["curves"], *plan.get("block_curves", [])]
    ]
    _attach(ctx.curves, plan.get("params_fractions", {}), "params_fraction")
    _attach(ctx.curves, plan.get("latency_fractions", {}), "latency_fraction")
    ctx.pruner.layer_ms = dict(plan.get("layer_ms", {}))
    ctx.keep_float = list(plan.get("int8_keep_float", output.get("int8_keep_float", [])))
    ctx.float_fallback = [
        r["layer"] for r in ranked if r["accuracy_drop"] > 0 and r["layer"] not in ctx.keep_float
    ][:2]


def compress(
    model: nn.Module,
    splits: Splits,
    cfg: CompressConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    storage: str | None = None,
    device: str | torch.device = "cpu",
    data_args: dict[str, Any] | None = None,
    log: Log | None = _stderr,
    source: str | os.PathLike[str] | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> dict[str, Any]:
    """Find the smallest/fastest compressed model within an accuracy budget.

    Args:
        model: the trained float model (not modified). It must be saveable by
            :func:`slimkit.save` (a registered or torchvision architecture).
        splits: the data; validation accuracy steers the search, the test set is read once
            at the end.
        cfg: the budget, goal and search settings.
        run_dir: where every stage, trial, the final artifacts and the report are written.
        resume: continue the run in ``run_dir`` after its last finished stage.
        storage: an Optuna storage URL (e.g. ``postgresql://...``) shared with
            ``slimkit worker`` processes; default: a journal file in ``run_dir``.
        device: where recovery training runs (latency is measured on the CPU).
        data_args: how workers reload the data (``load_data`` keyword arguments).
        log: receives one line per event (None: silent).
        source: the artifact ``model`` was read from. ``run_dir`` is tied to its bytes (to
            the model's tensors without it) and to the data: resuming with another input is
            an error.
        stale_after_s: a trial left running whose heartbeat is older than this (its process
            died, here or on another host) is run again.

    Returns:
        The summary also written to ``run_dir/summary.json``: ``baseline`` and ``result``
        (the keys of ``slimkit profile --json``), ``budget``, ``goal``, ``plan``, ``stages``
        and ``files``.

    Raises:
        AccuracyBudgetError: if no plan keeps the budget (the best one is attached).
        DataError: if the model does not fit the data (classes, input shape).
        SlimkitError: if ``run_dir`` holds a run of another input, or needs ``resume``, or
            another process is running compress on it.
    """
    say = log or (lambda _message: None)
    stale = StaleTrials(stale_after_s)
    torch_device = resolve_device(device)
    model = copy.deepcopy(model).cpu().eval()
    data = data_args or {"name": splits.name}
    config = {"compress": cfg.to_dict(), "data": data, "storage": storage}
    check_fits(model, splits, str(source or "the model"), logits=cfg.metric is None)
    check_runtimes(cfg)
    given = RunInput.of(model, data, source)
    with run_lock(run_dir):  # one compress process per run directory; workers join it
        run = RunDir.create(Path(run_dir), config, resume, inputs=stage_inputs, given=given)
        if run.redone:
            say(f"resume: the options changed; redoing {', '.join(run.redone)}")
        _choose_study(run, config)
        if not run.done("baseline"):
            _baseline(run, model, splits, cfg, say)
        ctx = _context(run, model, splits, cfg, torch_device)
        if not run.done("sensitivity"):
            _sensitivity(run, ctx.pruner, splits, cfg, say)
            _read_sensitivity(run, ctx)
        if not run.done("plan"):
            _plan(run, ctx.pruner, ctx.curves, splits, cfg, say)
            _read_sensitivity(run, ctx)
        if not run.done("search"):
            study = open_study(run, storage)
            if not study.get_trials(deepcopy=False):
                study.enqueue_trial(initial_params(cfg, initial_keep(run.output("plan"))))
            start = time.time()
            deadline = start + cfg.time_budget_s if cfg.time_budget_s else None
            search_loop(ctx, run, storage, say, deadline, stale)
            while stale.wait(study, say):  # a dead worker's trial was requeued: run it
                search_loop(ctx, run, storage, say, deadline, stale)
            with run.stage("search", {}, seconds=busy_seconds(study)) as out:
                records = trial_records(study)
                write_json(run.path / "trials.json", records)
                out.update(trials=len(records), file=str(run.path / "trials.json"))
        records = _read_records(run)
        if not run.done("polish"):
            _polish(run, ctx, records, say)
        records = _with_polished(records, _read_records(run, "polish"), cfg)
        if not run.done("verify"):
            _verify(run, ctx, records, say)
        if not run.done("export"):
            _export(run, ctx, say)
        if not run.done("report"):
            with run.stage("report", {}) as out:
                summary = _summary(run, cfg)
                write_json(run.path / "summary.json", summary)
                from ..report import write_report

                out.update(files=write_report(run.path))
        summary = _summary(run, cfg)
        write_json(run.path / "summary.json", summary)
        return summary


def _read_records(run: RunDir, stage: str = "search") -> list[dict[str, Any]]:
    return list(read_json(Path(run.output(stage)["file"])))


def _reloaded(run: RunDir) -> RunDir:
    run.reload()
    return run


def _wait_for(
    ready: Callable[[], bool], deadline: float, poll_s: float, say: Log, run_dir: object
) -> None:
    while not ready():
        if time.time() > deadline:
            raise SlimkitError(
                f"{run_dir} did not reach its search stage in time; start "
                "`slimkit compress ... --out RUN_DIR --storage URL` first"
            )
        say("worker: waiting for the run to reach its search stage")
        time.sleep(poll_s)


def run_worker(
    run_dir: str | os.PathLike[str],
    *,
    storage: str | None = None,
    device: str = "cpu",
    log: Log | None = _stderr,
    poll_s: float = 0.5,
    wait_s: float = 600.0,
    allowed_code: Collection[str] = (),
    trust_code: bool = False,
    stale_after_s: float = STALE_AFTER_S,
) -> int:
    """Join a compress run's search: run trials of its study until it holds enough.

    The run directory must be reachable (a shared file system). The worker waits up to
    ``wait_s`` seconds for the run to exist and finish its plan stage. Returns the number of
    trials this worker completed. Whoever can write the run directory must not choose code
    for the worker to run: ``module:function`` data or metrics it names are imported only if
    listed in ``allowed_code``, or with ``trust_code`` (which also allows its model's factory).
    A trial another process left running without a heartbeat for ``stale_after_s`` seconds
    is run again.

    Raises:
        SlimkitError: if the run does not reach its search stage in time, or names code the
            worker was not allowed to run.
    """
    say = log or (lambda _message: None)
    stale = StaleTrials(stale_after_s)
    deadline = time.time() + wait_s
    path = Path(run_dir)
    # Load what is ready as soon as it is ready, so the worker joins the search quickly.
    _wait_for(lambda: (path / "state.json").exists(), deadline, poll_s, say, run_dir)
    run = RunDir.open(path)
    config = run.state["config"]
    check_run_code(config, run.state_path, allowed=allowed_code, trust=trust_code)
    cfg = CompressConfig.from_dict(config["compress"])
    storage = storage or config.get("storage")
    splits = load_data(**config["data"])
    _wait_for(lambda: _reloaded(run).done("plan"), deadline, poll_s, say, run_dir)
    model = load(run.output("baseline")["artifact"], trust_code=trust_code)
    ctx = _context(run, model, splits, cfg, resolve_device(device))
    study = open_study(run, storage)
    before = len(trial_records(study))
    search_loop(ctx, run, storage, say, None, stale)
    return len(trial_records(study)) - before
