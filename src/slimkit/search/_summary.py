"""``summary.json``: what ``compress`` returns, and what the CLI and the report print.

Everything is read from the run directory's finished stages, so a resumed run that had
nothing left to do returns the same summary.
"""

from __future__ import annotations

from typing import Any

from ._config import CompressConfig
from ._export import chosen_record
from ._record import TrialRecord
from ._run import RunDir
from ._verify import Check


def summary(run: RunDir, cfg: CompressConfig) -> dict[str, Any]:
    """The summary of a run whose export stage is done: ``baseline`` and ``result`` (the
    keys of ``slimkit profile --json``), ``budget``, ``goal``, ``plan``, ``recovery`` (how the
    trials recovered, and what the recovery stage measured), ``deployment``,
    ``plain``, ``ratios``, ``stages``, ``files`` and ``config``."""
    export = run.output("export")
    chosen = chosen_record(run)
    baseline, result = export["baseline"], export["result"]
    return {
        "baseline": baseline,
        "result": result,
        "budget": _budget(run, cfg, baseline, result),
        "goal": cfg.goal,
        "plan": _plan(chosen),
        "recovery": run.output("recovery") if run.done("recovery") else None,
        "deployment": _deployment(chosen, result),
        "plain": export["plain"],
        "ratios": {
            "speedup_b64": baseline["latency_ms_b64"] / result["latency_ms_b64"],
            **_versus_plain(export["plain"], result),
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


def _budget(
    run: RunDir, cfg: CompressConfig, baseline: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    """The budget and what the result lost, on validation (with its standard error) and on
    test."""
    metric, budget, check = cfg.scorer(), cfg.budget, _chosen_check(run)
    return {
        "max_drop": budget.max_drop,
        "val_drop": metric.drop(baseline["val_accuracy"], result["val_accuracy"]),
        "val_drop_se": None if check is None else check.drop_se,
        "margin_se": budget.margin_se,
        "test_drop": metric.drop(baseline["test_accuracy"], result["test_accuracy"]),
        "metric": metric.to_dict(),
    }


def _chosen_check(run: RunDir) -> Check | None:
    """Verify's check of the candidate it chose."""
    verify = run.output("verify")
    number = verify["chosen"]["number"]
    checks = (Check(**c) for c in verify["checked"])
    return next((c for c in checks if c.number == number), None)


def _plan(chosen: TrialRecord) -> dict[str, Any]:
    """The chosen plan: its knobs, structure, sparsity and precision."""
    structure = chosen.structured
    return {
        "macs_keep": chosen.knobs.get("macs_keep"),
        "params_keep": chosen.knobs.get("params_keep"),
        "latency_keep": chosen.knobs.get("latency_keep"),
        "macs_fraction": structure.macs_fraction,
        "ratios": structure.ratios,
        "removed_blocks": structure.removed_blocks or [],
        "widths": structure.widths,
        "sparsity": chosen.sparsity,
        "precision": chosen.precision,
    }


def _deployment(chosen: TrialRecord, result: dict[str, Any]) -> dict[str, Any]:
    """Which runtime and precision won, and by how much over each alternative (batch 64, and
    batch 1 where timed)."""
    measured = chosen.deployments or []
    won = next((m for m in measured if m.label == chosen.precision), None)
    return {
        "runtime": result["backend"],
        "precision": chosen.precision,
        "alternatives": [
            {
                **m.to_dict(),
                "slower_than_chosen": m.ms_b64 / won.ms_b64,
                "slower_than_chosen_b1": (
                    m.ms_b1 / won.ms_b1 if m.ms_b1 is not None and won.ms_b1 else None
                ),
            }
            for m in measured
            if m != won
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
