"""One compress process per run directory: a second one on a live run is refused, naming the
first; a lock left by a dead process is no obstacle (#19 item 9)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from slimkit import SlimkitError, save
from slimkit.cli import _compress as cli_compress
from slimkit.cli._main import main
from slimkit.search import CompressConfig, compress
from slimkit.search import _compress as search_compress
from slimkit.search._lock import run_lock
from slimkit.testing import random_splits, seeded_model

HOLD = textwrap.dedent(
    """
    import sys, time
    from slimkit.search._lock import run_lock

    with run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
    """
)


class Reached(Exception):
    """The run got past every check to its first stage."""


def _reached(*args: object, **kwargs: object) -> None:
    raise Reached


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another live process holding ``tmp_path / "run"``'s lock."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_compress_on_a_live_run_is_refused_naming_the_first(
    tmp_path: Path,
    holder: subprocess.Popen[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # two `--resume` runs on one live run both redid sensitivity and plan
    monkeypatch.setattr(search_compress, "_baseline", _reached)
    monkeypatch.setattr(cli_compress, "load_data", lambda **kwargs: random_splits())
    artifact = save(seeded_model("seed-cnn-slim"), tmp_path / "m.safetensors")
    run = tmp_path / "run"
    for resume in ([], ["--resume"]):
        code = main(["compress", str(artifact), "--out", str(run), *resume])
        lines = capsys.readouterr().err.splitlines()
        assert code == 1 and len(lines) == 1, lines
        assert lines[0].startswith(
            f"slimkit: error: {run} is in use by pid {holder.pid} on host {socket.gethostname()}"
        )
        assert lines[0].endswith(
            f"wait for it to finish, or join its search from another process with "
            f"`slimkit worker {run}`"
        )
    assert sorted(p.name for p in run.iterdir()) == ["lock"]  # nothing else was written

    holder.kill()  # the kernel drops a dead process's lock
    holder.wait()
    with pytest.raises(Reached):
        cfg = CompressConfig(goal="macs", quantize=False)
        compress(seeded_model("seed-cnn-slim"), random_splits(), cfg, run, log=None)


def test_a_dead_process_lock_file_is_no_obstacle(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "lock").write_text(json.dumps({"pid": 1, "host": "gone", "since": 0}))
    with run_lock(run) as lock:
        holder = json.loads(lock.read_text())
        assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
        # Any other holder is refused while it is held, even in this process.
        in_use = f"{run} is in use by pid {os.getpid()} on host"
        with pytest.raises(SlimkitError, match=in_use), run_lock(run):
            pass


def test_the_lock_is_released_however_compress_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_compress, "_baseline", _reached)
    model, splits, run = seeded_model("seed-cnn-slim"), random_splits(), tmp_path / "run"
    cfg = CompressConfig(goal="macs", quantize=False)
    with pytest.raises(Reached) as first:
        compress(model, splits, cfg, run, log=None)
    # The failed call's frames are still alive (``first`` holds its traceback): the lock is
    # released by the call's end, not by garbage collection.
    with pytest.raises(Reached):
        compress(model, splits, cfg, run, resume=True, log=None)
    assert first.value is not None
