"""Ctrl-C: exit 130 and one line that says what was kept, for each kind of command."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimkit import save
from slimkit.cli import _compress as cli_compress
from slimkit.cli._commands import COMMANDS
from slimkit.cli._main import main
from slimkit.search import _compress as search_compress
from slimkit.testing import random_splits, seeded_model


def _ctrl_c(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def _interrupted(capsys: pytest.CaptureFixture[str], argv: list[object]) -> str:
    code = main([str(arg) for arg in argv])
    lines = capsys.readouterr().err.splitlines()
    assert code == 130 and len(lines) == 1, (code, lines)
    assert lines[0].startswith("slimkit: interrupted; ")
    return lines[0]


@pytest.fixture
def artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model, random data for it, and Ctrl-C as compress's first stage starts."""
    monkeypatch.setattr(cli_compress, "load_data", lambda **kwargs: random_splits())
    monkeypatch.setattr(search_compress, "_baseline", _ctrl_c)
    return save(seeded_model("seed-cnn-slim"), tmp_path / "m.safetensors")


def test_an_interrupted_compress_says_its_run_directory_resumes(
    tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # compress said "no output file was written" although the run directory had files
    run = tmp_path / "run"
    line = _interrupted(capsys, ["compress", artifact, "--out", run])
    assert line == (
        f"slimkit: interrupted; {run} keeps the stages and trials it finished: run the same "
        "command with --resume to continue"
    )
    assert (run / "state.json").is_file()
    # ... and --resume does continue it (to the same first stage, interrupted again).
    assert _interrupted(capsys, ["compress", artifact, "--out", run, "--resume"]) == line


def test_a_compress_interrupted_before_its_run_directory_says_so(
    tmp_path: Path,
    artifact: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli_compress, "load_data", _ctrl_c)
    run = tmp_path / "run"
    line = _interrupted(capsys, ["compress", artifact, "--out", run])
    assert line == "slimkit: interrupted; no run directory was started"
    assert not run.exists()


def test_an_interrupted_recipe_names_its_run_directory(
    tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "recipe-run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {artifact}\nout: {run}\ncompress:\n  quantize: false\n")
    line = _interrupted(capsys, ["run", recipe])
    assert f"{run} keeps the stages and trials it finished" in line


def test_an_interrupted_worker_says_its_trials_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_compress, "run_worker", _ctrl_c)
    run = tmp_path / "run"
    line = _interrupted(capsys, ["worker", run])
    assert f"the trials this worker finished stay in the study of {run}" in line


def test_other_commands_do_not_claim_a_run_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(COMMANDS, "models", _ctrl_c)
    line = _interrupted(capsys, ["models"])
    assert line == "slimkit: interrupted; files are written whole, so none was left half-written"
