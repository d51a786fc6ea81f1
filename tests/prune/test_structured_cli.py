"""``slimkit graph`` and ``slimkit prune --method structured`` (in-process, tiny data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import slimkit
from slimkit.cli._main import main
from slimkit.testing import seeded_model

TINY = ["--limit-train", "200", "--limit-eval", "100", "--device", "cpu", "--finetune-epochs", "0"]


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return slimkit.save(seeded_model("seed-cnn"), tmp_path / "seed.safetensors")


def test_graph_prints_the_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "resnet20", "--members"]) == 0
    out = capsys.readouterr().out
    assert "conv1, layer1.0.conv2, layer1.1.conv2" in out  # the stage's residual group
    assert "conv1.weight[0]×16" in out and "blocked: reaches the model output" in out


def test_graph_json_of_an_artifact(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(artifact), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["prunable_units"] == 16 + 32 + 128
    assert result["groups"][0]["members"][0].startswith("conv1")


def test_prune_structured_writes_a_loadable_smaller_artifact(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmnist
) -> None:
    out = tmp_path / "small.safetensors"
    argv = ["prune", str(artifact), "--method", "structured", "--target-macs", "0.5"]
    assert main([*argv, "--round-to", "4", "--out", str(out), "--json", *TINY]) == 0
    result = json.loads(capsys.readouterr().out)
    assert abs(result["macs"] / result["baseline_macs"] - 0.5) <= 0.05 * 0.5
    model = slimkit.load(out)
    assert model.conv1.out_channels % 4 == 0 and model.conv1.out_channels < 16
    spec = slimkit.read_spec(out)
    assert spec["provenance"]["config"]["target_macs"] == 0.5


def test_prune_structured_bad_ratio_is_a_usage_error(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["prune", str(artifact), "--method", "structured", "--ratio", "1.5"]
    assert main([*argv, "--out", str(tmp_path / "x.safetensors"), *TINY]) == 2
    assert "ratio must be in [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_prune_structured_everything_ignored(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmnist
) -> None:
    argv = ["prune", str(artifact), "--method", "structured", "--ratio", "0.5", "--ignore", "*"]
    assert main([*argv, "--out", str(tmp_path / "x.safetensors"), *TINY]) == 1
    assert "nothing can be pruned" in capsys.readouterr().err
