"""The search: an Optuna study of the plan's knobs, steered along the budget's frontier.

Each trial prunes by the plan to a fraction of the structured cost (and, for the size goal,
adds unstructured sparsity), recovers, quantizes and measures (:func:`._trial.run_trial`);
its record is kept in the trial's user attributes, so every process sharing the study's
storage (``slimkit worker``) sees it. The next fraction bisects the bracket around the
budget's frontier until it is narrow; the sampler (TPE) explores after that.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, SlimkitError
from ..measure import Budget
from ._config import CompressConfig, stage_inputs
from ._heartbeat import BEAT_ATTRS, Log, StaleTrials, heartbeat
from ._plan import plan_for_keep
from ._record import TrialRecord
from ._run import RunDir, write_json
from ._stages import COST_NAMES, initial_keep
from ._trial import Context, run_trial

#: The name of a run's first study; later ones are ``compress-2``, ...
STUDY = "compress"


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
    """Where the current study's trials write their models: ``trials/``, ``trials-2/``, ..."""
    name = study_name(run)
    return run.path / ("trials" if name == STUDY else "trials" + name.removeprefix(STUDY))


def choose_study(run: RunDir, config: dict[str, Any]) -> None:
    """Record the run's study: the one it has while the trials would be built the same way,
    a new one once ``config`` builds them differently."""
    inputs = stage_inputs(config, "study")
    study = run.state.get("study") or {"name": STUDY, "inputs": inputs}
    # Inputs recorded with an older layout of the config are read in this one's.
    if CompressConfig.upgraded(study["inputs"]) != inputs:
        number = int(study["name"].rpartition("-")[2]) if study["name"] != STUDY else 1
        study = {"name": f"{STUDY}-{number + 1}", "inputs": inputs}
    run.state["study"] = study
    run.save()


def open_study(run: RunDir, storage: str | None) -> Any:
    """The run's current study in ``storage`` (default: ``study.journal`` in the run)."""
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
    return frontier_point(trials, cfg.budget, cfg.min_macs_keep, cfg.max_macs_keep)


def frontier_point(
    trials: list[tuple[float, float | None]], budget: Budget, low: float, high: float
) -> float | None:
    """Bisection of a fraction kept (of MACs, or of weights) against the accuracy budget.

    ``trials`` are (kept, drop) pairs, drop None for a trial still running. A deeper cut
    (less kept) costs more accuracy, so the deepest plan within budget and the shallowest one
    over it below that bracket the frontier; the next trial goes half-way between them.
    Returns None once the bracket is narrower than :data:`FRONTIER_RESOLUTION` or its midpoint
    is already taken (another worker runs it): the sampler then explores instead.
    """
    done = [(keep, drop) for keep, drop in trials if drop is not None]
    within = [keep for keep, drop in done if budget.holds(drop)]
    deepest_ok = min(within, default=high)
    # ``<=``: when nothing passed and the shallowest allowed cut (``high``) failed, the frontier
    # lies above the range; the bracket is empty rather than a search below a failure.
    over = [keep for keep, drop in done if not budget.holds(drop) and keep <= deepest_ok]
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
        keep = frontier_point(on_cut, cfg.budget, 1.0 - cfg.max_sparsity, 1.0)
        return None if keep is None else {key: cut, "sparsity": 1.0 - keep}
    trials = [(float(t.params[key]), drop(t)) for t in live if key in t.params]
    keep = frontier_macs_keep(trials, cfg)
    return None if keep is None else {key: keep}


def _same_plan_as(study: Any, ctx: Context, params: dict[str, Any]) -> TrialRecord | None:
    """The record of a completed trial whose plan prunes exactly as ``params`` would, made
    this trial's (its knobs, and which trial it reuses), if there is one."""
    if params.get("sparsity", 0.0) > 0:
        return None
    key = ctx.cfg.keep_param
    ratios, _ = plan_for_keep(ctx.pruner, ctx.curves, float(params[key]), ctx.cfg.cost)
    widths = ctx.pruner.widths(ratios)
    optuna = _optuna()
    for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = record_of(other)
        if record.sparsity == 0 and record.structured.widths == widths:
            return replace(record, owner=None, knobs=dict(params), same_plan_as=other.number)
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
                # Channel rounding maps nearby fractions to one structure: reuse its result.
                # Otherwise seeded by its slot (trials completed before it), so a trial that
                # is re-run after an interruption trains exactly as it would have.
                twin = _same_plan_as(study, ctx, params)
                record = (
                    twin
                    if twin is not None
                    else run_trial(ctx, params, out_dir, seed=cfg.seed + completed)
                )
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
        _tell(study, trial, replace(record, number=trial.number), cfg)
        _log_trial(log, ctx, trial.number, record)


def _tell(study: Any, trial: Any, record: TrialRecord, cfg: CompressConfig) -> None:
    """Store ``record`` in the trial's user attributes and finish the trial with its goal."""
    trial.set_constraint("accuracy_drop", cfg.budget.excess(record.drop))
    for key, value in record.to_dict().items():
        trial.set_user_attr(key, value)
    study.tell(trial, record.goal_value(cfg.goal))


def _log_trial(log: Log, ctx: Context, number: int, record: TrialRecord) -> None:
    cfg, knobs = ctx.cfg, record.knobs
    ok = "within budget" if cfg.budget.holds(record.drop) else "over budget"
    log(
        f"search: trial {number} keep {knobs[cfg.keep_param]:.0%} {COST_NAMES[cfg.cost]}"
        + (f", sparsity {knobs['sparsity']:.0%}" if "sparsity" in knobs else "")
        + f" → val {ctx.metric.format(record.val_accuracy)} "
        f"(drop {record.drop:+.4g}, {ok}), "
        f"{record.bytes:,} B, b64 {record.latency_ms_b64:.2f} ms"
        + (
            f" (same plan as trial {record.same_plan_as})"
            if record.same_plan_as is not None
            else ""
        )
    )


def record_of(trial: Any) -> TrialRecord:
    """The record a completed trial holds in its user attributes."""
    attrs = {k: v for k, v in trial.user_attrs.items() if k not in BEAT_ATTRS}
    return TrialRecord.parse_list([attrs], f"trial {trial.number} of the study")[0]


def trial_records(study: Any) -> list[dict[str, Any]]:
    """The records of the study's completed trials, by number, as ``trials.json`` holds them."""
    optuna = _optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [
        {k: v for k, v in t.user_attrs.items() if k not in BEAT_ATTRS}
        for t in sorted(done, key=lambda t: t.number)
    ]


def study_records(study: Any) -> list[TrialRecord]:
    """:func:`trial_records`, typed."""
    return TrialRecord.parse_list(trial_records(study), f"the study {study.study_name!r}")


def search_stage(
    run: RunDir, ctx: Context, storage: str | None, log: Log, stale: StaleTrials
) -> None:
    """Run the study (the plan's cut first) until it holds ``cfg.trials`` trials or the time
    budget is spent, wait for trials other processes still run, and keep every record in
    ``trials.json``."""
    cfg = ctx.cfg
    study = open_study(run, storage)
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(initial_params(cfg, initial_keep(run.output("plan"))))
    deadline = time.time() + cfg.time_budget_s if cfg.time_budget_s else None
    search_loop(ctx, run, storage, log, deadline, stale)
    while stale.wait(study, log):  # a dead worker's trial was requeued: run it
        search_loop(ctx, run, storage, log, deadline, stale)
    with run.stage("search", {}, seconds=busy_seconds(study)) as out:
        records = study_records(study)
        write_json(run.path / "trials.json", records)
        out.update(trials=len(records), file=str(run.path / "trials.json"))


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
