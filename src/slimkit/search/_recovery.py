"""The recovery stage: do the trials distil from the original (kd) or fine-tune on labels (ce)?

Distillation costs a forward pass of the original per step, and a few epochs of it do not
always recover a pruned model better than cross-entropy does: the distillation benchmark
(``docs/benchmarks/distill.md``) measures both. With ``recover="auto"`` (the default) this
stage prunes one candidate, the plan's starting cut or :data:`PROBE_KEEP` of the cost if the
plan cuts less, recovers two copies of it for the trials' epochs, one each way with the same
seed, and scores both on the validation split. The trials then use KD only if it scored
strictly better; ``recover="kd"`` or ``"ce"`` skips the measurement.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._heartbeat import Log
from ._run import RunDir
from ._stages import initial_keep
from ._trial import Context, structured_step

#: The deepest cut the probe recovers when the plan starts shallower: a plan that starts
#: at the whole model would give recovery nothing to win back.
PROBE_KEEP = 0.6
METHODS = ("ce", "kd")


def probe_recovery(ctx: Context, keep: float) -> dict[str, Any]:
    """Recover the ``keep`` cut once per method; the scores and the method that won."""
    scores: dict[str, float] = {}
    macs_fraction = 1.0
    for method in METHODS:
        probe = dataclasses.replace(ctx, recovery=method)
        model, structure = structured_step(probe, keep, ctx.cfg.seed)
        scores[method] = ctx.metric(model, ctx.splits.val)
        macs_fraction = structure.macs_fraction
    kd_better = ctx.metric.drop(scores["ce"], scores["kd"]) < 0
    return {
        "method": "kd" if kd_better else "ce",
        "keep": keep,
        "macs_fraction": macs_fraction,
        "val": scores,
        "epochs": ctx.cfg.recover_train.epochs,
    }


def recovery_stage(run: RunDir, ctx: Context, log: Log) -> None:
    """Choose the trials' recovery method (measured when ``cfg.recover == "auto"``)."""
    cfg = ctx.cfg
    with run.stage("recovery", {}) as out:
        if cfg.recover != "auto" or cfg.recover_train.epochs == 0:
            out["method"] = "ce" if cfg.recover == "auto" else cfg.recover
            return
        keep = min(initial_keep(run.output("plan")), PROBE_KEEP)
        epochs = cfg.recover_train.epochs
        log(f"recovery: ce vs kd on a cut to {keep:.0%}, {epochs} epoch(s) each")
        out.update(probe_recovery(ctx, keep))
        ce, kd = (ctx.metric.format(out["val"][m]) for m in METHODS)
        log(f"recovery: ce {ce}, kd {kd} → the trials recover with {out['method']}")


def chosen_recovery(run: RunDir) -> str | None:
    """The method the recovery stage chose (None before it ran)."""
    return str(run.output("recovery")["method"]) if run.done("recovery") else None
