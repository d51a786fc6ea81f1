"""``slimkit train`` from flags and from a recipe file (in-process, tiny data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import slimkit
from slimkit.cli._main import main

TINY = ["--limit-train", "200", "--limit-eval", "100", "--device", "cpu"]
RECIPE = """\
model: seed-cnn-slim
data: fashion-mnist
out: {out}
train:
  epochs: 3
  lr: 0.01
  optimizer: sgd
  weight_decay: 0.0005
  augment: crop-flip
  seed: 4
"""


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main([*argv, *TINY])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 and "--json" in argv else {}, captured.err


def test_train_from_a_recipe_with_flags_over_it(tmp_path: Path, capsys, fmnist) -> None:
    recipe = tmp_path / "r.yaml"
    out = tmp_path / "refs" / "m.safetensors"  # the recipe's directory is created
    recipe.write_text(RECIPE.format(out=out))
    code, result, _ = _run(["train", "--recipe", str(recipe), "--epochs", "1", "--json"], capsys)
    assert code == 0 and result["out"] == str(out)
    spec = slimkit.read_spec(out)
    provenance = spec["provenance"]
    assert spec["arch"]["name"] == "seed-cnn-slim" and provenance["model"] == "seed-cnn-slim"
    assert provenance["recipe"] == str(recipe)
    expected = {"epochs": 1, "lr": 0.01, "optimizer": "sgd", "weight_decay": 0.0005}
    assert expected.items() <= provenance["config"].items()
    assert provenance["config"]["augment"] == "crop-flip" and provenance["config"]["seed"] == 4
    assert spec["metrics"]["test_accuracy"] == result["test_accuracy"]
    assert provenance["wall_time_s"] > 0 and provenance["threads"] >= 1 and provenance["cpu"]
    assert len(provenance["history"]["epoch_seconds"]) == 1


def test_train_flags_without_a_recipe_keep_the_cli_defaults(tmp_path: Path, capsys, fmnist) -> None:
    out = tmp_path / "m.safetensors"
    argv = ["train", "--model", "seed-cnn-slim", "--epochs", "1", "--augment", "crop-flip"]
    code, _, _ = _run([*argv, "--out", str(out), "--json"], capsys)
    assert code == 0
    config = slimkit.read_spec(out)["provenance"]["config"]
    assert (
        config["lr"] == 2e-3 and config["optimizer"] == "adam" and config["augment"] == "crop-flip"
    )


def test_train_needs_a_model_and_an_out(tmp_path: Path, capsys) -> None:
    code, _, err = _run(["train", "--out", str(tmp_path / "m.safetensors")], capsys)
    assert code == 2 and "train needs --model, or a --recipe that names it" in err


def test_unknown_augmentation_is_a_usage_error(tmp_path: Path, capsys) -> None:
    argv = ["train", "--model", "seed-cnn", "--augment", "blur", "--out", str(tmp_path / "m")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "invalid choice: 'blur' (choose from 'crop-flip', 'none')" in capsys.readouterr().err
