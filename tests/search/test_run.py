"""The run directory: each stage records what it ran with, and a resume redoes what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimkit.search._run import RunDir

CONFIG = {"compress": {"goal": "latency", "structure_cost": None}}


def _inputs(default_cost: str) -> Any:
    """Stage inputs that resolve the cost's default as a given slimkit version would."""

    def inputs(config: dict[str, Any], stage: str) -> dict[str, Any]:
        cost = config["compress"]["structure_cost"] or default_cost
        return {
            "goal": config["compress"]["goal"],
            **({} if stage == "baseline" else {"cost": cost}),
        }

    return inputs


def _finish(run: RunDir, *stages: str) -> None:
    for name in stages:
        with run.stage(name, {}) as out:
            out["done"] = name


def test_a_default_that_resolves_otherwise_redoes_the_stages_it_feeds(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", CONFIG, resume=False, inputs=_inputs("macs"))
    _finish(run, "baseline", "sensitivity", "plan")
    assert run.state["stages"]["plan"]["inputs"] == {"goal": "latency", "cost": "macs"}

    same = RunDir.create(tmp_path / "run", CONFIG, resume=True, inputs=_inputs("macs"))
    assert same.redone == [] and same.done("plan")
    # The same saved configuration, read by a version whose default cost is latency.
    newer = RunDir.create(tmp_path / "run", CONFIG, resume=True, inputs=_inputs("latency"))
    assert newer.redone == ["sensitivity", "plan"]
    assert newer.done("baseline") and not newer.done("plan")
    again = RunDir.create(tmp_path / "run", CONFIG, resume=True, inputs=_inputs("latency"))
    assert again.redone == [] and again.done("baseline")  # the redone stages were dropped


def test_stages_of_older_runs_are_checked_against_their_saved_configuration(
    tmp_path: Path,
) -> None:
    run = RunDir.create(tmp_path / "run", CONFIG, resume=False, inputs=_inputs("macs"))
    _finish(run, "baseline", "sensitivity")
    for stage in run.state["stages"].values():
        del stage["inputs"]  # written before stages recorded their inputs
    run.save()
    changed = {"compress": {"goal": "size", "structure_cost": None}}
    resumed = RunDir.create(tmp_path / "run", changed, resume=True, inputs=_inputs("macs"))
    assert resumed.redone == ["baseline", "sensitivity"]
