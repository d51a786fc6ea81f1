"""A run directory of an older layout is refused with one line that says what to do (#20 item 4);
one of the layout this slimkit writes, stamped or written just before the stamp, is read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimkit import ArtifactError, SlimkitError
from slimkit.cli._main import main
from slimkit.search import CompressConfig, RunDir, compress
from slimkit.search import _compress as search_compress
from slimkit.search._layout import LAYOUT
from slimkit.testing import random_splits, seeded_model

CFG = CompressConfig(goal="macs", quantize=False, trials=1)
WHAT_TO_DO = (
    "start a new run with another --out, or finish this one with the slimkit version that wrote it"
)


class Reached(Exception):
    """The run got past every check to its first stage."""


def _reached(*args: object, **kwargs: object) -> None:
    raise Reached


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run directory this slimkit started (stopped as its baseline stage began)."""
    monkeypatch.setattr(search_compress, "_baseline", _reached)
    with pytest.raises(Reached):
        compress(seeded_model("seed-cnn-slim"), random_splits(), CFG, tmp_path / "run", log=None)
    return tmp_path / "run"


def _edit(run: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = json.loads((run / "state.json").read_text())
    change(state)
    (run / "state.json").write_text(json.dumps(state))
    return state


def _unstamped(state: dict[str, Any]) -> None:
    """The state as slimkit wrote it just before the layout stamp."""
    del state["layout"]
    state["stages"]["plan"] = {"seconds": 0, "output": {"initial_keep": 0.5, "int8_keep_float": []}}


def test_a_new_run_is_stamped_with_the_layout(run: Path) -> None:
    state = json.loads((run / "state.json").read_text())
    assert state["layout"] == LAYOUT == 2
    assert {"input", "study", "config"} <= set(state)


def test_a_run_written_just_before_the_stamp_opens_and_is_stamped_when_resumed(
    run: Path,
) -> None:
    _edit(run, _unstamped)
    assert RunDir.open(run).output("plan")["initial_keep"] == 0.5
    with pytest.raises(Reached):
        compress(seeded_model("seed-cnn-slim"), random_splits(), CFG, run, resume=True, log=None)
    assert json.loads((run / "state.json").read_text())["layout"] == LAYOUT


def _no_input(state: dict[str, Any]) -> None:
    del state["input"]


def _no_study(state: dict[str, Any]) -> None:
    del state["study"]


def _no_remove_blocks(state: dict[str, Any]) -> None:
    del state["config"]["compress"]["remove_blocks"]


def _plan_for_macs(state: dict[str, Any]) -> None:
    plan = state["stages"]["plan"]["output"]
    plan["initial_macs_keep"] = plan.pop("initial_keep")


def _probe_with_the_curves(state: dict[str, Any]) -> None:
    plan = state["stages"]["plan"]["output"]
    state["stages"]["sensitivity"] = {"seconds": 0, "output": {"int8_keep_float": []}}
    del plan["int8_keep_float"]


@pytest.mark.parametrize(
    ("older", "why"),
    [
        (_no_input, "no input recorded"),
        (_no_study, "no study recorded"),
        (_no_remove_blocks, "its configuration has no remove_blocks"),
        (_plan_for_macs, "its plan records no initial_keep"),
        (_probe_with_the_curves, "the first-layer probe is kept with the sensitivity curves"),
    ],
)
def test_an_older_run_is_refused_with_one_line_before_anything_is_written(
    run: Path, capsys: pytest.CaptureFixture[str], older: Callable[..., None], why: str
) -> None:
    _edit(run, lambda state: (_unstamped(state), older(state)))
    before = (run / "state.json").read_bytes()
    state_path = run / "state.json"
    message = f"{state_path} was written by an older slimkit ({why}); {WHAT_TO_DO}"
    with pytest.raises(ArtifactError) as refused:
        compress(seeded_model("seed-cnn-slim"), random_splits(), CFG, run, resume=True, log=None)
    assert str(refused.value) == message
    assert isinstance(refused.value, SlimkitError)
    (run / "summary.json").write_text("{}")  # the report refuses it too, not for lacking one
    for argv in (["worker", str(run)], ["report", str(run)]):
        assert main(argv) == 1
        assert capsys.readouterr().err.splitlines() == [f"slimkit: error: {message}"]
    assert (run / "state.json").read_bytes() == before


def test_a_run_of_another_layout_number_is_refused(run: Path) -> None:
    _edit(run, lambda state: state.update(layout=LAYOUT + 1))
    with pytest.raises(ArtifactError, match=f"holds a run of layout {LAYOUT + 1}, this slimkit"):
        RunDir.open(run)


def test_trial_records_of_an_older_layout_are_refused_naming_the_file(run: Path) -> None:
    from slimkit.report import write_report

    # Records from before runtimes were recorded named their choice `precision_choice`.
    (run / "summary.json").write_text("{}")
    trials = run / "trials.json"
    trials.write_text(json.dumps([{"number": 0, "precision_choice": "int8"}]))
    with pytest.raises(ArtifactError) as refused:
        write_report(run)
    assert str(refused.value) == (
        f"{trials} was written by an older slimkit (a trial record: TrialRecord has no "
        f"'precision_choice'); {WHAT_TO_DO}"
    )


def _layout_1(compress: dict[str, Any]) -> dict[str, Any]:
    """A compress config (or study inputs) as slimkit wrote it before its training schedules
    were TrainConfigs: flat recovery and QAT knobs, no version."""
    old = {k: v for k, v in compress.items() if k not in ("version", "recover_train", "qat_train")}
    recovery, qat = compress["recover_train"], compress["qat_train"]
    assert qat["lr"] == recovery["lr"] / 10  # what layout 1 could express
    return {
        **old,
        "recover_epochs": recovery["epochs"],
        "recover_lr": recovery["lr"],
        "qat_epochs": qat["epochs"],
    }


def test_a_run_whose_config_has_the_flat_schedule_knobs_resumes_as_it_was(run: Path) -> None:
    from slimkit.search._config import stage_inputs
    from slimkit.search._study import choose_study

    def older(state: dict[str, Any]) -> None:
        state["config"]["compress"] = _layout_1(state["config"]["compress"])
        state["study"]["inputs"] = _layout_1(state["study"]["inputs"])
        state["stages"]["baseline"] = {"seconds": 0, "output": {"val_accuracy": 50.0}}

    state = _edit(run, older)
    assert "recover_epochs" in state["config"]["compress"]
    config = {**state["config"], "compress": CFG.to_dict()}  # what compress(...) now passes
    opened = RunDir.create(run, config, resume=True, inputs=stage_inputs)
    assert opened.redone == [] and opened.done("baseline")  # nothing to redo
    choose_study(opened, config)
    assert opened.state["study"]["name"] == "compress"  # its trials stay its trials
    saved = json.loads((run / "state.json").read_text())
    assert saved["config"]["compress"] == CFG.to_dict()  # rewritten in this layout
    # A run of the unstamped form is read the same way (its knobs' names, not their values,
    # changed), and a worker reads its configuration too.
    _edit(
        run,
        lambda s: (_unstamped(s), s["config"].update(compress=_layout_1(s["config"]["compress"]))),
    )
    assert CompressConfig.from_dict(RunDir.open(run).state["config"]["compress"]) == CFG
