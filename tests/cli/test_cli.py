"""The console script, run as users run it: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slimkit import read_spec
from slimkit.testing import seeded_model
from slimkit.train import save_checkpoint

# One thread: the CLI's training is tiny here, and threads on a busy machine only slow it down.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
DATA = ["--limit-train", "1000", "--limit-eval", "500", "--device", "cpu"]
TINY_DATA = ["--limit-train", "200", "--limit-eval", "100", "--device", "cpu"]
PROFILE_KEYS = {
    "test_accuracy",
    "val_accuracy",
    "params",
    "nonzero_params",
    "macs",
    "bytes",
    "latency_ms_b1",
    "latency_ms_b64",
}


def slimkit(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimkit", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=300,
    )


def _ok_json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)  # nothing but the JSON on stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def trained(workdir: Path) -> tuple[Path, dict]:
    out = workdir / "seed.safetensors"
    cmd = ["train", "--model", "seed-cnn", "--epochs", 1, "--out", out, "--json", *DATA]
    return out, _ok_json(slimkit(*cmd, cwd=workdir))


@pytest.fixture(scope="module")
def pruned(workdir: Path, trained: tuple[Path, dict]) -> tuple[Path, dict]:
    out = workdir / "seed-pruned.safetensors"
    cmd = ["prune", trained[0], "--sparsity", 0.8, "--finetune-epochs", 1, "--out", out, "--json"]
    return out, _ok_json(slimkit(*cmd, *DATA, cwd=workdir))


def test_train_writes_an_artifact_and_reports_json(trained: tuple[Path, dict]) -> None:
    path, result = trained
    assert result["out"] == str(path)
    assert result["test_accuracy"] > 40.0  # chance is 10%
    assert path.is_file()
    assert not path.with_name(path.name + ".ckpt").exists()  # removed after success
    spec = read_spec(path)
    assert spec["arch"]["name"] == "seed-cnn"
    assert spec["metrics"] == {k: result[k] for k in ("val_accuracy", "test_accuracy")}
    assert spec["provenance"]["data"]["sizes"] == {"train": 1000, "val": 500, "test": 500}


def test_prune_reaches_the_requested_sparsity(
    trained: tuple[Path, dict], pruned: tuple[Path, dict]
) -> None:
    path, result = pruned
    assert result["sparsity"] == pytest.approx(0.8, abs=1e-4)
    assert result["baseline_test_accuracy"] == pytest.approx(trained[1]["test_accuracy"])
    assert result["test_accuracy"] > 30.0
    spec = read_spec(path)
    assert spec["provenance"]["config"]["sparsity"] == 0.8
    assert spec["provenance"]["parent"] == str(trained[0])


def test_profile_json_of_dense_and_pruned(
    workdir: Path, trained: tuple[Path, dict], pruned: tuple[Path, dict]
) -> None:
    cmd = ["profile", trained[0], pruned[0], "--json", "--threads", 1]
    dense, sparse = _ok_json(slimkit(*cmd, *DATA, cwd=workdir))
    for measured in (dense, sparse):
        assert measured.keys() >= PROFILE_KEYS
        assert measured["params"] == 206_922
        assert measured["macs"] == 1_218_048  # zeros are still multiplied by dense kernels
        assert measured["latency_ms_b1"] > 0 and measured["latency_ms_b64"] > 0
    assert dense["test_accuracy"] == pytest.approx(trained[1]["test_accuracy"])
    assert dense["bytes"] == trained[0].stat().st_size
    assert dense["nonzero_params"] == 206_922
    weights = 206_922 - (16 + 32 + 128 + 10)  # biases are not pruned
    assert sparse["nonzero_params"] == 206_922 - round(0.8 * weights)
    assert sparse["bytes"] < dense["bytes"] / 2


def _assert_clean_failure(
    result: subprocess.CompletedProcess[str], code: int, message: str, out: Path
) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("slimkit: error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.splitlines()[-1] == errors[0]  # the error is the last word
    assert message in errors[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_missing_dataset(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "m.safetensors"
    cmd = ["train", "--model", "seed-cnn", "--data-dir", empty, "--out", out, "--epochs", 1]
    result = slimkit(*cmd, cwd=tmp_path)
    _assert_clean_failure(result, 1, "has no train-images-idx3-ubyte[.gz]", out)


def test_unknown_model(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    result = slimkit("train", "--model", "seed-nn", "--out", out, *TINY_DATA, cwd=tmp_path)
    _assert_clean_failure(result, 1, "unknown model 'seed-nn' (did you mean 'seed-cnn'?)", out)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    cmd = ["train", "--model", "seed-cnn", "--data-dir", tmp_path / "nowhere", "--out", out]
    result = slimkit(*cmd, "--debug", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "DataError" in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("slimkit: error: fashion-mnist data not found in")
    assert "apt-get install -y dataset-fashion-mnist" in last
    assert not out.exists()


def test_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    out = tmp_path / "r.safetensors"
    checkpoint = tmp_path / "r.safetensors.ckpt"  # cmd_train resumes from OUT + ".ckpt"
    model = seeded_model("seed-cnn")
    save_checkpoint(checkpoint, model, torch.optim.Adam(model.parameters()), {"epoch": 1})
    cmd = ["train", "--model", "resnet20", "--resume", "--epochs", 2, "--out", out, *TINY_DATA]
    result = slimkit(*cmd, cwd=tmp_path)
    _assert_clean_failure(result, 1, f"checkpoint {checkpoint} was written for", out)
    assert checkpoint.is_file()  # the user's checkpoint is not destroyed


def test_truncated_artifact(tmp_path: Path, trained: tuple[Path, dict]) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(trained[0].read_bytes()[:-1000])
    out = tmp_path / "p.safetensors"
    result = slimkit("prune", broken, "--sparsity", 0.5, "--out", out, *TINY_DATA, cwd=tmp_path)
    _assert_clean_failure(result, 1, "truncated or corrupted", out)


def test_sparsity_out_of_range(tmp_path: Path, trained: tuple[Path, dict]) -> None:
    out = tmp_path / "p.safetensors"
    cmd = ["prune", trained[0], "--sparsity", 1.5, "--out", out, *TINY_DATA]
    result = slimkit(*cmd, cwd=tmp_path)
    _assert_clean_failure(result, 2, "sparsity must be in [0, 1)", out)


def test_impossible_budget(tmp_path: Path, trained: tuple[Path, dict]) -> None:
    # Half or more of the weights zeroed at random (the first trial of either search strategy)
    # and no fine-tuning: accuracy falls by tens of points, so no trial keeps a zero budget.
    out = tmp_path / "p.safetensors"
    cmd = [
        "prune",
        trained[0],
        "--max-drop",
        0,
        "--importance",
        "random",
        "--max-trials",
        1,
        "--max-sparsity",
        0.9999,
        "--finetune-epochs",
        0,
        "--out",
        out,
        *DATA,
    ]
    result = slimkit(*cmd, cwd=tmp_path)
    _assert_clean_failure(result, 3, "no sparsity met the budget of 0.0 points in 1 trials", out)
    assert re.search(r"closest: \d+\.\d% sparsity, \d+\.\d\d points below", result.stderr)
    assert re.search(r"^trial 1: sparsity .* over budget$", result.stderr, re.MULTILINE)
