"""``compress``: the accuracy-budgeted search over pruning, distillation and quantization.

Stages (each checkpointed in the run directory, so ``resume=True`` continues after the last
finished one): baseline → sensitivity → plan (:mod:`._stages`) → recovery (:mod:`._recovery`)
→ search (:mod:`._study`) → polish (:mod:`._polish`) → verify (:mod:`._verify`) → export (:mod:`._export`) → report
(:mod:`._summary`, :mod:`slimkit.report`). Resumed with other options, a run redoes only the
stages those options feed. Only validation data is read until the export stage, which
measures the test set once. Every verdict on the accuracy budget is :class:`slimkit.measure.Budget`'s.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._device import resolve_device
from .._fit import check_fits
from ..data import Splits, load_data
from ..errors import SlimkitError
from ..export import load
from ._config import CompressConfig, check_runtimes, stage_inputs
from ._export import export_stage
from ._guards import RunInput, check_run_code
from ._heartbeat import STALE_AFTER_S, Log, StaleTrials
from ._latency import LatencyTable
from ._lock import run_lock
from ._plan import GroupCurve, Pruner
from ._polish import polish_stage, with_polished
from ._record import TrialRecord
from ._recovery import chosen_recovery, recovery_stage
from ._run import RunDir, write_json
from ._stages import attach, plan_stage, sensitivity_stage
from ._stages import baseline_stage as _baseline  # the name tests patch to stop at the start
from ._stages import probe_tag as _probe_tag  # noqa: F401  (benchmarks/latency_model.py)
from ._study import choose_study, open_study, search_loop, search_stage, trial_records
from ._summary import summary as run_summary
from ._trial import Context, load_runtime
from ._verify import verify_stage


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        ArtifactError: if ``run_dir`` holds a run of an older layout (see :mod:`._layout`).
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
        choose_study(run, config)
        if not run.done("baseline"):
            _baseline(run, model, splits, cfg, say)
        ctx = _context(run, model, splits, cfg, torch_device)
        if not run.done("sensitivity"):
            sensitivity_stage(run, ctx.pruner, splits, cfg, say)
            _read_sensitivity(run, ctx)
        if not run.done("plan"):
            plan_stage(run, ctx.pruner, ctx.curves, splits, cfg, say)
            _read_sensitivity(run, ctx)
        if not run.done("recovery"):
            recovery_stage(run, ctx, say)
        ctx.recovery = chosen_recovery(run) or ctx.recovery
        if not run.done("search"):
            search_stage(run, ctx, storage, say, stale)
        records = _read_records(run)
        if not run.done("polish"):
            polish_stage(run, ctx, records, say)
        records = with_polished(records, _read_records(run, "polish"), cfg)
        if not run.done("verify"):
            verify_stage(run, ctx, records, say)
        if not run.done("export"):
            export_stage(run, ctx, say)
        if not run.done("report"):
            _report_stage(run, cfg)
        summary = run_summary(run, cfg)
        write_json(run.path / "summary.json", summary)
        return summary


def _context(
    run: RunDir, model: nn.Module, splits: Splits, cfg: CompressConfig, device: torch.device
) -> Context:
    """What every trial reads, from the finished stages."""
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
        recovery=chosen_recovery(run) or (cfg.recover if cfg.recover != "auto" else "kd"),
    )
    reference = baseline.get("reference")
    # Another host without the baseline's runtime times trials against eager PyTorch instead.
    if reference and reference["runtime"] in cfg.runtimes() and Path(reference["graph"]).is_file():
        ctx.reference = load_runtime(reference["runtime"], reference["graph"], cfg.latency_threads)
        ctx.reference_ms = {k: reference[k] for k in ("latency_ms_b1", "latency_ms_b64")}
    _read_sensitivity(run, ctx)
    return ctx


def _read_sensitivity(run: RunDir, ctx: Context) -> None:
    """Curves for the plan; the layers int8 hurts most, for the float fallback; once the plan
    is done, what it measured too."""
    if not run.done("sensitivity"):
        return
    output = run.output("sensitivity")
    ranked = output.get("quantization", [])
    plan = run.output("plan") if run.done("plan") else {}
    ctx.curves = [
        GroupCurve.from_dict(c) for c in [*output["curves"], *plan.get("block_curves", [])]
    ]
    attach(ctx.curves, plan.get("params_fractions", {}), "params_fraction")
    attach(ctx.curves, plan.get("latency_fractions", {}), "latency_fraction")
    ctx.pruner.layer_ms = dict(plan.get("layer_ms", {}))
    if plan.get("latency_table"):
        ctx.pruner.latency_table = LatencyTable.from_dict(plan["latency_table"])
    ctx.keep_float = list(plan.get("int8_keep_float", []))
    ctx.float_fallback = [
        r["layer"] for r in ranked if r["accuracy_drop"] > 0 and r["layer"] not in ctx.keep_float
    ][:2]


#: What writes the report from a finished run directory (``run_dir -> {kind: path}``):
#: :mod:`slimkit.report` registers its HTML and Markdown writer here when imported, so that
#: the search does not depend on the package that reads its output.
REPORT_WRITERS: list[Callable[[Path], dict[str, str]]] = []


def register_report_writer(writer: Callable[[Path], dict[str, str]]) -> None:
    """Have every compress run call ``writer(run_dir)`` once its summary is written."""
    if writer not in REPORT_WRITERS:
        REPORT_WRITERS.append(writer)


def _report_stage(run: RunDir, cfg: CompressConfig) -> None:
    """``summary.json``, then the registered reports (``report.html``, ``report.md``)."""
    with run.stage("report", {}) as out:
        write_json(run.path / "summary.json", run_summary(run, cfg))
        files: dict[str, str] = {}
        for writer in REPORT_WRITERS:
            files.update(writer(run.path))
        out.update(files=files)


def _read_records(run: RunDir, stage: str = "search") -> list[TrialRecord]:
    """The records the search (or polish) stage kept."""
    return TrialRecord.read_list(Path(run.output(stage)["file"]))


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
            worker was not allowed to run; :class:`~slimkit.errors.ArtifactError` if it is
            of an older layout.
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
    _wait_for(lambda: _reloaded(run).done("recovery"), deadline, poll_s, say, run_dir)
    model = load(run.output("baseline")["artifact"], trust_code=trust_code)
    ctx = _context(run, model, splits, cfg, resolve_device(device))
    study = open_study(run, storage)
    before = len(trial_records(study))
    search_loop(ctx, run, storage, say, None, stale)
    return len(trial_records(study)) - before
