"""Bad arguments are refused before any work: exit 2, one line, the input left as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slimkit import export, save
from slimkit.cli import _commands, _compress
from slimkit.cli._main import main
from slimkit.testing import seeded_model


@pytest.fixture(autouse=True)
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the model or the data, or starting compress, fails the test: every refusal
    here comes first."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(export, "load", forbidden)
    for module in (_commands, _compress):
        monkeypatch.setattr(module, "load_data", forbidden)
    monkeypatch.setattr(_compress, "compress", forbidden)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return save(seeded_model("seed-cnn-slim"), tmp_path / "same.safetensors")


def _refused(capsys: pytest.CaptureFixture[str], argv: list[object], message: str) -> None:
    code = main([str(arg) for arg in argv])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("slimkit: error: "), lines
    assert message in lines[0]


@pytest.mark.parametrize("threads", [-2, 0])
@pytest.mark.parametrize("command", ["profile", "compress"])
def test_threads_must_be_positive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, threads: int
) -> None:
    argv: list[object] = [command, tmp_path / "m.safetensors", "--threads", threads]
    if command == "compress":
        argv += ["--out", tmp_path / "run"]
    _refused(capsys, argv, f"--threads must be >= 1 (CPU threads for latency), got {threads}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-drop", "nan"], "max_drop must be a finite number, got nan"),
        (["--max-drop", "inf"], "max_drop must be a finite number, got inf"),
        (["--max-drop", 1, "--max-sparsity", "nan"], "max_sparsity must be a finite number"),
        (["--sparsity", "nan"], "sparsity must be a finite number, got nan"),
        (["--sparsity", 0.5, "--finetune-lr", "nan"], "--finetune-lr must be a finite number"),
        (["--method", "structured", "--ratio", "nan"], "ratio must be a finite number"),
        (["--method", "structured", "--target-macs", "inf"], "target_macs must be a finite"),
    ],
)
def test_prune_refuses_non_finite_budgets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, options: list[object], message: str
) -> None:
    # `prune --max-drop nan` ran the whole search, then exited 3
    out = tmp_path / "p.safetensors"
    _refused(capsys, ["prune", tmp_path / "m.safetensors", *options, "--out", out], message)
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-drop", "nan"], "CompressConfig.max_drop must be a finite number, got nan"),
        (["--max-drop=-inf"], "CompressConfig.max_drop must be a finite number, got -inf"),
        (["--recover-lr", "nan"], "--recover-lr must be a finite number, got nan"),
        (["--recover-epochs", "-1"], "--recover-epochs must be >= 0, got -1"),
        (["--margin-se", "inf"], "CompressConfig.margin_se must be a finite number"),
    ],
)
def test_compress_refuses_non_finite_budgets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, options: list[object], message: str
) -> None:
    # `compress --max-drop nan` ran a trial, failed in Optuna and wrote NaN into state.json
    run = tmp_path / "run"
    _refused(capsys, ["compress", tmp_path / "m.safetensors", *options, "--out", run], message)
    assert not run.exists()


def test_a_recipe_with_fractional_trials_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recipe = tmp_path / "r.yaml"
    run = tmp_path / "run"
    recipe.write_text(f"model: m.safetensors\nout: {run}\ncompress:\n  trials: 1.5\n")
    _refused(capsys, ["run", recipe], "CompressConfig.trials must be an integer, got 1.5")


def test_a_recipe_schedule_is_checked_like_every_knob(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recipe = tmp_path / "r.yaml"
    run = tmp_path / "run"
    recipe.write_text(
        f"model: m.safetensors\nout: {run}\ncompress:\n  recover_train: {{lr: .nan}}\n"
    )
    _refused(capsys, ["run", recipe], "TrainConfig.lr must be a finite number, got nan")
    assert not run.exists()


def _unchanged(path: Path, before: tuple[bytes, int]) -> None:
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink", "hardlink"])
@pytest.mark.parametrize("method", ["unstructured", "structured"])
def test_prune_never_overwrites_its_input(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    artifact: Path,
    method: str,
    spelling: str,
) -> None:
    # `prune same.safetensors --out same.safetensors` replaced the trained model
    before = (artifact.read_bytes(), artifact.stat().st_mtime_ns)
    monkeypatch.chdir(tmp_path)
    out = {
        "same": artifact,
        "relative": Path(".") / "sub" / ".." / artifact.name,
        "symlink": tmp_path / "link.safetensors",
        "hardlink": tmp_path / "hard.safetensors",
    }[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        out.symlink_to(artifact)
    elif spelling == "hardlink":
        os.link(artifact, out)
    target = ["--sparsity", 0.5] if method == "unstructured" else ["--ratio", 0.5]
    argv = ["prune", artifact, "--method", method, *target, "--out", out]
    _refused(capsys, argv, f"--out {out} is the input artifact {artifact}; it would be overwritten")
    _unchanged(artifact, before)


def test_prune_with_a_budget_never_overwrites_its_input(
    capsys: pytest.CaptureFixture[str], artifact: Path
) -> None:
    before = (artifact.read_bytes(), artifact.stat().st_mtime_ns)
    argv = ["prune", artifact, "--max-drop", 1.0, "--out", artifact]
    _refused(capsys, argv, "it would be overwritten")
    _unchanged(artifact, before)


@pytest.mark.parametrize("via", ["run_dir", "symlinked_run_dir", "recipe"])
def test_compress_never_overwrites_its_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, via: str
) -> None:
    # `compress RUN/model.safetensors --out RUN` overwrote its own input
    run = tmp_path / "run"
    source = save(seeded_model("seed-cnn-slim"), run / "model.safetensors")
    before = (source.read_bytes(), source.stat().st_mtime_ns)
    given = source
    if via == "symlinked_run_dir":
        (tmp_path / "link").symlink_to(run)
        given = tmp_path / "link" / "model.safetensors"
    argv: list[object] = ["compress", given, "--out", run]
    if via == "recipe":
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"model: {source}\nout: {run}\n")
        argv = ["run", recipe]
    _refused(capsys, argv, f"the input {given} lies inside the run directory {run}")
    _unchanged(source, before)
    assert sorted(p.name for p in run.iterdir()) == ["model.safetensors"]


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["quantize", "{a}", "--scheme", "int8-static", "--out", "{out}"], "quantized model"),
        (["slim", "{a}", "--width", "0.5", "--out", "{out}"], "slimmed model"),
        (
            ["distill", "--teacher", "{a}", "--student", "seed-cnn-slim", "--out", "{out}"],
            "student",
        ),
        (["distill", "--teacher", "{b}", "--student", "{a}", "--out", "{out}"], "student"),
    ],
)
def test_quantize_slim_and_distill_never_overwrite_their_input(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    artifact: Path,
    argv: list[str],
    what: str,
) -> None:
    other = save(seeded_model("seed-cnn-slim"), tmp_path / "teacher.safetensors")
    link = tmp_path / "link.safetensors"
    link.symlink_to(artifact)
    before = (artifact.read_bytes(), artifact.stat().st_mtime_ns)
    filled = [a.format(a=artifact, b=other, out=link) for a in argv]
    _refused(capsys, filled, f"--out {link} is the input artifact {artifact}")
    _refused(capsys, filled, what)
    _unchanged(artifact, before)
