"""Trials a dead process left running are run again, whatever host or PID it had: a running
trial beats, and one whose beat stopped for the grace period is requeued (#19 item 1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from slimkit.cli._main import main
from slimkit.data import load_data
from slimkit.search import (
    CompressConfig,
    RunDir,
    StaleTrials,
    _study,
    compress,
    open_study,
    run_worker,
)
from slimkit.search._heartbeat import beat_interval, heartbeat, pid_space
from slimkit.testing import seeded_model
from slimkit.train import TrainConfig

HOST = socket.gethostname()
DATA = {"name": "fashion-mnist", "limit_train": 256, "limit_eval": 128}
FAST = CompressConfig(
    goal="macs", quantize=False, trials=2, max_drop=100.0, recover="ce",
    recover_train=TrainConfig(epochs=1),
    sensitivity_images=32, sensitivity_ratios=(0.5,),
)  # fmt: skip


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def _trial(owner: str, beat: float | None, *, interval: float = 0.0, here: bool = True) -> Any:
    attrs: dict[str, Any] = {"owner": owner, "heartbeat_s": interval}
    if here:
        attrs["pid_space"] = pid_space()
    if beat is not None:
        attrs["heartbeat"] = beat
    return SimpleNamespace(number=0, user_attrs=attrs, datetime_start=datetime.now())


def test_a_running_trial_beats_until_it_ends() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    trial = study.ask()
    with heartbeat(trial, stale_after_s=0.2):
        first = study.trials[0].user_attrs["heartbeat"]
        time.sleep(0.3)
        attrs = study.trials[0].user_attrs
        assert attrs["heartbeat"] > first  # refreshed by the background thread
    assert attrs["owner"] == f"{HOST}:{os.getpid()}"
    assert attrs["heartbeat_s"] == beat_interval(0.2) == 0.05
    last = study.trials[0].user_attrs["heartbeat"]
    time.sleep(0.15)
    assert study.trials[0].user_attrs["heartbeat"] == last  # stopped with the trial
    assert beat_interval(300.0) == 30.0


def test_a_trial_is_stale_when_its_process_is_gone_or_silent() -> None:
    now = time.time()
    stale = StaleTrials(stale_after_s=60.0)
    # This host, process gone: at once, heartbeat or not.
    assert "is gone" in (stale.reason(_trial(f"{HOST}:{_dead_pid()}", now)) or "")
    # A PID reused by a live process (here: the test runner's parent) is no proof of life:
    # the heartbeat decides.
    reused = f"{HOST}:{os.getppid()}"
    assert stale.reason(_trial(reused, now - 30)) is None
    assert "no heartbeat from its process" in (stale.reason(_trial(reused, now - 90)) or "")
    # Another host (or a container sharing this host name): only the heartbeat tells.
    assert stale.reason(_trial("elsewhere:1", now - 30)) is None
    assert "on elsewhere for 90 s" in (stale.reason(_trial("elsewhere:1", now - 90)) or "")
    assert stale.reason(_trial(f"{HOST}:{_dead_pid()}", now - 30, here=False)) is None
    # A writer that beats every 40 s is silent for 90 s before anyone may call it dead.
    assert stale.reason(_trial("elsewhere:1", now - 100, interval=40.0)) is None
    # A trial from before heartbeats: its start time is its last sign of life.
    old = _trial("elsewhere:1", None)
    assert stale.reason(old) is None
    assert stale.reason(old, now=now + 61) is not None
    with pytest.raises(ValueError, match="stale_after_s must be > 0"):
        StaleTrials(stale_after_s=0)


def test_a_heartbeat_from_a_clock_ahead_goes_stale_once_it_stops_changing() -> None:
    stale = StaleTrials(stale_after_s=0.1)
    ahead = _trial("elsewhere:1", time.time() + 3600)  # that host's clock runs an hour ahead
    assert stale.reason(ahead) is None
    time.sleep(0.15)
    assert "no heartbeat" in (stale.reason(ahead) or "")


def test_requeue_fails_a_silent_trial_and_queues_its_parameters_once() -> None:
    study = optuna.create_study()
    trial = study.ask({"macs_keep": optuna.distributions.FloatDistribution(0.1, 1.0)})
    trial.set_user_attr("owner", "elsewhere:1")
    trial.set_user_attr("heartbeat", time.time() - 600)
    stale, lines = StaleTrials(stale_after_s=60.0), []
    assert stale.requeue(study, lines.append) == 1
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert study.trials[1].system_attrs["fixed_params"] == trial.params
    (line,) = lines
    assert line.startswith("search: trial 0 was interrupted (no heartbeat from its process on ")
    assert line.endswith(" s (limit 60 s)); it runs again")
    assert stale.requeue(study, lines.append) == 0 and not stale.wait(study, lines.append)


@pytest.mark.parametrize("joins", ["compress --resume", "worker"])
def test_a_run_killed_on_one_host_resumes_on_another_and_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joins: str
) -> None:
    class Killed(BaseException):
        """The process died mid-trial: nothing ran after this, not even cleanup."""

    real_trial = _study.run_trial
    calls = []

    def dies_in_the_second_trial(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real_trial(*args, **kwargs)

    model, run = seeded_model("seed-cnn-slim"), tmp_path / "run"
    splits = load_data(**DATA)  # a worker loads it again by name
    monkeypatch.setattr(socket, "gethostname", lambda: "host-a")
    monkeypatch.setattr(_study, "run_trial", dies_in_the_second_trial)
    with pytest.raises(Killed):  # its trials beat every 0.25 s
        compress(model, splits, FAST, run, log=None, stale_after_s=1.0, data_args=DATA)
    study = open_study(RunDir.open(run), None)
    (left,) = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert left.user_attrs["owner"] == f"host-a:{os.getpid()}"

    # Another host: it cannot ask host-a whether that PID lives; the heartbeat went silent.
    monkeypatch.setattr(socket, "gethostname", lambda: "host-b")
    monkeypatch.setattr(_study, "run_trial", real_trial)
    lines: list[str] = []
    if joins == "worker":  # a worker that joins after the grace period runs the trial itself
        time.sleep(1.1)
        assert run_worker(run, log=lines.append, stale_after_s=1.0) == 1
    started = time.monotonic()
    summary = compress(model, splits, FAST, run, resume=True, log=lines.append, stale_after_s=1.0,
                       data_args=DATA)  # fmt: skip
    assert time.monotonic() - started < 120
    if joins == "compress --resume":  # it waits for the trial's heartbeat to go stale
        assert any(line.startswith("search: waiting for trials") for line in lines), lines
    assert any(
        f"trial {left.number} was interrupted (no heartbeat from its process on host-a" in line
        for line in lines
    ), lines
    records = json.loads((run / "trials.json").read_text())
    assert len(records) == 2 and records[-1]["params"] == left.params
    assert all("heartbeat" not in record for record in records)  # who ran it, not what it found
    assert summary["files"]["artifact"] == str(run / "model.safetensors")
    assert (run / "model.safetensors").is_file() and (run / "report.html").is_file()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--stale-after must be longer than 0 s, got '0'"),
        ("soon", "--stale-after must look like 90s, 30m or 2h, got 'soon'"),
    ],
)
def test_stale_after_is_checked_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    for argv in (
        ["compress", "m.safetensors", "--out", tmp_path / "run"],
        ["worker", tmp_path / "run"],
    ):
        assert main([*map(str, argv), "--stale-after", value]) == 2
        assert capsys.readouterr().err.splitlines() == [f"slimkit: error: {message}"]
    assert not (tmp_path / "run").exists()
