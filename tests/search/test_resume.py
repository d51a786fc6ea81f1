"""A compress run killed mid-search resumes and ends with the plan of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

LIMITS = {"limit_train": 1024, "limit_eval": 512}  # as in conftest.py

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def command(artifact: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "slimkit", "compress", str(artifact), "--out", str(out),
        "--goal", "macs", "--max-drop", "3", "--trials", "3", "--recover", "ce",
        "--recover-epochs", "1", "--no-quantize", "--threads", "1", "--device", "cpu",
        "--limit-train", str(LIMITS["limit_train"]), "--limit-eval", str(LIMITS["limit_eval"]),
        "--json", *extra,
    ]  # fmt: skip


def run(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_killed_run_resumes_to_the_same_plan(trained_artifact: Path, tmp_path: Path) -> None:
    reference = run(command(trained_artifact, tmp_path / "straight"))

    interrupted = tmp_path / "killed"
    proc = subprocess.Popen(
        command(trained_artifact, interrupted),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it while the second trial runs: the first one is finished and stored.
    deadline = time.time() + 300
    while not (interrupted / "trials" / "0001").exists():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((interrupted / "state.json").read_text())
    assert "search" not in state["stages"] and "plan" in state["stages"]

    with_resume = run(command(trained_artifact, interrupted, "--resume"))
    assert with_resume["plan"] == reference["plan"]
    assert with_resume["result"]["val_accuracy"] == reference["result"]["val_accuracy"]
    trials = json.loads((interrupted / "trials.json").read_text())
    straight = json.loads((tmp_path / "straight" / "trials.json").read_text())
    assert [t["params"] for t in trials] == [t["params"] for t in straight]


def test_search_time_counts_every_process_that_ran_trials() -> None:
    """The search stage is timed by its trials' own spans: overlapping workers count once,
    the gap of a stop counts not at all, a trial stopped unfinished not at all."""
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from slimkit.search._study import busy_seconds

    t0 = datetime(2026, 11, 28, 12, 0, 0)

    def trial(start_s: float, end_s: float | None) -> SimpleNamespace:
        end = None if end_s is None else t0 + timedelta(seconds=end_s)
        return SimpleNamespace(
            datetime_start=t0 + timedelta(seconds=start_s), datetime_complete=end
        )

    trials = [
        trial(0, 100),  # first process
        trial(50, 120),  # a second worker, overlapping: 20 s more
        trial(110, 115),  # inside both: nothing more
        trial(130, None),  # stopped unfinished
        trial(1000, 1060),  # resumed much later: 60 s, the gap not counted
    ]
    study = SimpleNamespace(get_trials=lambda deepcopy=False: trials)
    assert busy_seconds(study) == 180.0
