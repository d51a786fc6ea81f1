"""``--quiet`` silences progress; under ``--json`` failures are JSON on stdout too (issue #20)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from slimkit import save
from slimkit.cli._commands import COMMANDS
from slimkit.cli._main import main
from slimkit.errors import AccuracyBudgetError, ArtifactError, DataError
from slimkit.testing import seeded_model

TINY = ["--limit-train", "200", "--limit-eval", "100", "--device", "cpu"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(seeded_model("seed-cnn-slim"), tmp_path_factory.mktemp("out") / "m.safetensors")


def _loud_then_quiet(
    capfd: pytest.CaptureFixture[str], argv: list[object], out: Path | None = None
) -> tuple[str, str, str]:
    """stderr of the command as given, then stdout and stderr of the same with ``--quiet``."""
    outs = [["--out", str(out.with_suffix(f".{i}.safetensors"))] if out else [] for i in (0, 1)]
    assert main([*map(str, argv), *TINY, *outs[0]]) == 0
    loud = capfd.readouterr()
    assert main([*map(str, argv), *TINY, *outs[1], "--quiet"]) == 0
    quiet = capfd.readouterr()
    return loud.err, quiet.out, quiet.err


def test_quiet_prune_writes_nothing_on_stderr(
    artifact: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], fmnist: object
) -> None:
    argv = ["prune", artifact, "--sparsity", 0.5, "--finetune-epochs", 1]
    loud, out, quiet = _loud_then_quiet(capfd, argv, tmp_path / "p")
    assert "epoch 1/1" in loud  # fine-tuning reports each epoch
    assert quiet == ""
    assert out.startswith("saved ") and "sparsity 50.00%" in out


def test_quiet_budget_search_prints_no_trials(
    artifact: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], fmnist: object
) -> None:
    argv = ["prune", artifact, "--max-drop", 100, "--max-trials", 1, "--finetune-epochs", 0]
    loud, out, quiet = _loud_then_quiet(capfd, [*argv, "--json"], tmp_path / "b")
    assert "trial 1: sparsity" in loud
    assert quiet == ""
    assert json.loads(out)["sparsity"] > 0


def test_quiet_train_writes_nothing_on_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], fmnist: object
) -> None:
    argv = ["train", "--model", "seed-cnn-slim", "--epochs", 1]
    loud, out, quiet = _loud_then_quiet(capfd, argv, tmp_path / "t")
    assert "epoch 1/1" in loud
    assert quiet == ""
    assert out.startswith("saved ")


def test_quiet_models_writes_nothing_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--quiet"]) == 0
    captured = capfd.readouterr()
    assert captured.err == "" and "seed-cnn" in captured.out


def _raising(error: BaseException) -> Callable[..., int]:
    def command(*args: object) -> int:
        raise error

    return command


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DataError("no Fashion-MNIST here\nget it with apt install"), 1),
        (ArtifactError("truncated"), 1),
        (ValueError("--sparsity must be in [0, 1)"), 2),
        (AccuracyBudgetError("no sparsity met the budget"), 3),
    ],
)
def test_under_json_a_failure_is_one_json_object_on_stdout(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
) -> None:
    monkeypatch.setitem(COMMANDS, "models", _raising(error))
    assert main(["models", "--json"]) == code
    captured = capsys.readouterr()
    message = "; ".join(str(error).splitlines())
    expected = {"type": type(error).__name__, "message": message, "exit_code": code}
    assert json.loads(captured.out) == {"error": expected}
    assert captured.err.startswith("slimkit: error: ")  # the human line stays on stderr
    # Without --json, as before: stdout stays empty and stderr says it in one line.
    assert main(["models"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"slimkit: error: {str(error).splitlines()[0]}")


def test_under_json_an_interruption_is_json_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(COMMANDS, "models", _raising(KeyboardInterrupt()))
    assert main(["models", "--json"]) == 130
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "KeyboardInterrupt" and error["exit_code"] == 130
    assert error["message"].startswith("interrupted; ")


def test_a_real_failure_under_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.safetensors"
    argv = ["prune", str(missing), "--sparsity", "0.5", "--out", str(tmp_path / "o.safetensors")]
    assert main([*argv, "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error == {
        "type": "ArtifactError",
        "message": f"artifact {missing} does not exist",
        "exit_code": 1,
    }


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["prune", "--json"], "the following arguments are required: ARTIFACT, --out"),
        (["models", "--json", "--bogus"], "unrecognized arguments: --bogus"),
        (["nosuch", "--json"], "invalid choice: 'nosuch'"),
        (["train", "--model", "seed-cnn", "--augment", "blur", "--js"], "invalid choice: 'blur'"),
        (["prune", "m.safetensors", "--out", "o", "--sparsity", "x", "--json"], "invalid float"),
    ],
)
def test_usage_errors_under_json(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["type"] == "UsageError" and error["exit_code"] == 2
    assert says in error["message"]
    assert "usage: slimkit" in captured.err  # argparse's own message stays on stderr


def test_usage_errors_without_json_are_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", "--", "--json"])  # after --, --json is the artifact's name
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1].startswith("slimkit prune: error: ")
