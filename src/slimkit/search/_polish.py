"""The polish stage: the plans worth it, recovered again for longer.

Trials recover briefly, enough to rank plans; the best plan within budget, and the plans
better on the goal that missed the budget narrowly, deserve the longer schedule before
verify chooses among them.
"""

from __future__ import annotations

import dataclasses

from ._config import CompressConfig
from ._heartbeat import Log
from ._record import TrialRecord
from ._run import RunDir, write_json
from ._study import study_name
from ._trial import Context, run_trial


def best_first(records: list[TrialRecord], cfg: CompressConfig) -> list[TrialRecord]:
    """The records within budget, best on the goal first (the smaller drop on a tie)."""
    feasible = [r for r in records if cfg.budget.holds(r.drop)]
    return sorted(feasible, key=lambda r: (r.goal_value(cfg.goal), r.drop))


def polish_candidates(records: list[TrialRecord], cfg: CompressConfig) -> list[TrialRecord]:
    """The plans worth a longer recovery: the best one within budget, then the next ones
    better on the goal whose drop the budget counts recoverable (over the budget by less
    than the budget itself; nearest first).

    Plans without any pruning are left out: there is nothing for the recovery to win back.
    """
    budget = cfg.budget
    unique = list({r.artifact: r for r in records if r.pruned}.values())
    best = best_first(unique, cfg)[:1]
    bar = best[0].goal_value(cfg.goal) if best else float("inf")
    near = [
        r
        for r in unique
        if not budget.holds(r.drop) and budget.recoverable(r.drop) and r.goal_value(cfg.goal) < bar
    ]
    near.sort(key=lambda r: r.drop)
    return (best + near)[: cfg.polish_trials]


def with_polished(
    records: list[TrialRecord], polished: list[TrialRecord], cfg: CompressConfig
) -> list[TrialRecord]:
    """The candidates for verify: a polished plan within budget replaces its short-recovery
    original (and the trials that reused it)."""
    by_number = {r.number: r.artifact for r in records}
    replaced = {by_number[p.polished_from] for p in polished if cfg.budget.holds(p.drop)}
    return [r for r in records if r.artifact not in replaced] + polished


def polish_stage(run: RunDir, ctx: Context, records: list[TrialRecord], log: Log) -> None:
    """Recover the candidates again for longer; each polished plan is kept in
    ``polish/records.json`` as soon as it is done, so an interrupted stage, or one redone
    with more ``polish_trials``, does not train it twice."""
    cfg = ctx.cfg
    cache_path = run.path / "polish" / "records.json"
    with run.stage("polish", {}) as out:
        polished: list[TrialRecord] = []
        if cfg.polish_epochs > 0:
            cache = TrialRecord.read_list(cache_path) if cache_path.exists() else []
            for record in polish_candidates(records, cfg):
                again = _polished(run, ctx, record, cache, log)
                polished.append(again)
                if again not in cache:
                    cache.append(again)
                    write_json(cache_path, cache)
        write_json(run.path / "polished.json", polished)
        out.update(trials=len(polished), file=str(run.path / "polished.json"))


def _polished(
    run: RunDir, ctx: Context, record: TrialRecord, cache: list[TrialRecord], log: Log
) -> TrialRecord:
    """``record``'s plan recovered for ``recover_train.epochs + polish_epochs``, or the polished
    record ``cache`` holds for it already."""
    cfg, study = ctx.cfg, study_name(run)
    number, epochs = record.number, cfg.recover_train.epochs + cfg.polish_epochs
    assert isinstance(number, int), number  # candidates are search trials
    key = {"study": study, "polished_from": number, "recover_epochs": epochs}
    done = [p for p in cache if all(getattr(p, k) == v for k, v in key.items())]
    if done:
        log(f"polish: trial {number} was polished for {epochs} epochs before")
        return done[0]
    log(f"polish: trial {number} again, recovering for {epochs} epochs")
    schedule = dataclasses.replace(cfg.recover_train, epochs=epochs)
    longer = dataclasses.replace(ctx, cfg=dataclasses.replace(cfg, recover_train=schedule))
    out_dir = run.path / "polish" / study / f"{number:04d}-{epochs}ep"
    again = run_trial(longer, record.knobs, out_dir, seed=cfg.seed)
    again = dataclasses.replace(
        again, number=f"{number}+", study=study, polished_from=number, recover_epochs=epochs
    )
    log(
        f"polish: trial {number} → val {ctx.metric.format(again.val_accuracy)} "
        f"(drop {again.drop:+.2f}, was {record.drop:+.2f}), "
        f"b64 {again.latency_ms_b64:.2f} ms"
    )
    return again
