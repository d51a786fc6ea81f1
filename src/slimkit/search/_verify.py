"""The verify stage: the best candidate that holds the budget, re-measured from disk.

Candidates are tried best first; each is read back as deployed and scored again on validation,
its drop paired per example against the original's. With none holding, the run backs off to
the lightest compressed plan (int8, no pruning), then gives up with the closest plan attached.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from ..data import Splits
from ..errors import AccuracyBudgetError
from ..measure import correct_mask, fixed_threads, interleaved_latency, paired_drop
from ._config import CompressConfig
from ._heartbeat import Log
from ._polish import best_first
from ._record import TrialRecord
from ._run import RunDir
from ._trial import Context, reload_deployed, run_trial

#: How many of the best candidates the latency goal re-times side by side.
RETIMED = 4


@dataclass(frozen=True)
class Check:
    """One candidate verified: its validation score and drop, read back from disk.

    Attributes:
        number: the candidate's trial number (``"7+"`` polished, ``"backoff"``).
        val_accuracy: its validation score as deployed.
        drop: how much worse than the original's, paired per example for top-1.
        drop_se: the standard error of that drop (0 for a user's metric).
        holds: the budget's verdict on ``drop`` with its error (:meth:`Budget.holds`).
    """

    number: int | str | None
    val_accuracy: float
    drop: float
    drop_se: float
    holds: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def remeasure_latency(
    candidates: list[TrialRecord],
    splits: Splits,
    cfg: CompressConfig,
    original: nn.Module | None = None,
) -> list[TrialRecord]:
    """The candidates timed again side by side at batch 64 (the search's time kept as
    ``latency_ms_b64_trial``); fastest first."""
    runners = [reload_deployed(r, cfg, original) for r in candidates]
    times = interleaved_latency(runners, splits.example_input(64))
    timed = [
        replace(r, latency_ms_b64_trial=r.latency_ms_b64, latency_ms_b64=ms)
        for r, ms in zip(candidates, times, strict=True)
    ]
    return sorted(timed, key=lambda r: (r.latency_ms_b64, r.drop))


def verify_stage(run: RunDir, ctx: Context, records: list[TrialRecord], log: Log) -> None:
    """Pick the best candidate that holds the budget on validation, re-measured from disk.

    A candidate holds when its drop plus ``margin_se`` standard errors of that drop (paired
    per example against the original) is within ``max_drop``: the search keeps the best of
    several noisy estimates, and without the margin the plan at the edge of the budget lost
    more on test (resnet56: validation drop 0.47, test 0.78; polished, 0.48 and 0.58).

    Raises:
        AccuracyBudgetError: if no candidate holds, nor the back-off plan.
    """
    cfg = ctx.cfg
    with run.stage("verify", {}) as out:
        reference = correct_mask(ctx.model, ctx.splits.val) if ctx.metric.is_top1 else None
        checked: list[Check] = []
        for record in _ranked(ctx, records, log):
            checked.append(_check(ctx, record, reference, log))
            if checked[-1].holds:
                out.update(_output(record, checked, []))
                return
        backoff = []
        if cfg.int8:
            # The lightest compressed plan: no pruning, int8 only (QAT if PTQ misses).
            log("verify: no trial within budget; backing off to int8 without pruning")
            record = run_trial(ctx, {cfg.keep_param: 1.0}, run.path / "backoff", cfg.seed)
            record = replace(record, number="backoff")
            backoff.append(record)
            if cfg.budget.holds(record.drop):
                checked.append(_check(ctx, record, reference, log))
                if checked[-1].holds:
                    out.update(_output(record, checked, backoff))
                    return
        raise _budget_error(ctx, records + backoff)


def _output(
    chosen: TrialRecord, checked: list[Check], backoff: list[TrialRecord]
) -> dict[str, Any]:
    """The stage's output, in the JSON form the run directory holds (and reads back)."""
    return {
        "chosen": chosen.to_dict(),
        "checked": [c.to_dict() for c in checked],
        "backoff": [r.to_dict() for r in backoff],
    }


def _ranked(ctx: Context, records: list[TrialRecord], log: Log) -> list[TrialRecord]:
    """The candidates within budget, best first; for the latency goal the fastest few
    re-timed side by side, which may reorder them."""
    cfg = ctx.cfg
    ranked = best_first(records, cfg)
    if cfg.goal == "latency" and len(ranked) > 1:
        with fixed_threads(cfg.latency_threads):
            retimed = remeasure_latency(ranked[:RETIMED], ctx.splits, cfg, ctx.model)
        ranked = retimed + ranked[RETIMED:]
        log(
            "verify: the fastest candidates re-timed side by side: "
            + ", ".join(f"trial {r.number} {r.latency_ms_b64:.2f} ms" for r in ranked[:RETIMED])
        )
    return ranked


def _check(ctx: Context, record: TrialRecord, reference: torch.Tensor | None, log: Log) -> Check:
    """Score ``record`` as deployed against the original's per-example ``reference`` hits
    (top-1), or in the user's metric without one."""
    budget = ctx.cfg.budget
    deployed = reload_deployed(record, ctx.cfg, ctx.model)
    if reference is not None:
        hits = correct_mask(deployed, ctx.splits.val)
        drop, error = paired_drop(reference, hits)
        value = 100.0 * float(hits.double().mean())
    else:  # the user's metric: one number, no per-example pairing
        value = ctx.metric(deployed, ctx.splits.val)
        drop, error = ctx.metric.drop(ctx.baseline_val, value), 0.0
    entry = Check(record.number, value, drop, error, budget.holds(drop, error))
    verdict = "holds" if entry.holds else "does not hold"
    log(
        f"verify: trial {record.number} {verdict}: val "
        f"{ctx.metric.format(entry.val_accuracy)} "
        f"(drop {drop:+.4g} ± {error:.2f}, margin {budget.margin_se:g} s.e.)"
    )
    return entry


def _budget_error(ctx: Context, records: list[TrialRecord]) -> AccuracyBudgetError:
    """No plan held: the error names the closest one (attached as ``best``, in its JSON form)."""
    if not records:
        return AccuracyBudgetError("no trial completed", best=None)
    best = min(records, key=lambda r: r.drop)
    unit = " points" if ctx.metric.is_top1 else ""
    return AccuracyBudgetError(
        f"no plan kept validation {ctx.metric.name} within {ctx.cfg.budget.statement(unit)} of "
        f"{ctx.baseline_val:.4g}; the closest lost {best.drop:.4g}{unit} "
        f"(trial {best.number}, artifact {best.artifact}). Allow a larger "
        "--max-drop, a smaller --margin-se, more --trials or more recovery epochs",
        best=best.to_dict(),
    )
