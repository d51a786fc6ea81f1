from __future__ import annotations

from pathlib import Path

import pytest

from slimkit.search import load_recipe

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))


def test_there_are_shipped_recipes() -> None:
    assert {p.stem for p in RECIPES} >= {"seed-cnn", "resnet56"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.model.endswith(".safetensors")
    assert recipe.data["name"] == "fashion-mnist"
    assert recipe.compress.max_drop == 0.5


def test_overrides_and_errors(tmp_path: Path) -> None:
    path = RECIPES[0]
    recipe = load_recipe(path, ["compress.trials=3", "compress.goal=size", "out=/tmp/x"])
    assert (recipe.compress.trials, recipe.compress.goal, recipe.out) == (3, "size", "/tmp/x")
    with pytest.raises(
        ValueError, match=r"unknown keys \['trails'\] for CompressConfig; valid: \[.*'trials'"
    ):
        load_recipe(path, ["compress.trails=3"])
    with pytest.raises(ValueError, match="key=value"):
        load_recipe(path, ["compress.trials"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m.safetensors\nout: o\nstages: []\n")
    with pytest.raises(ValueError, match="valid keys: compress, data, device, model, out, storage"):
        load_recipe(bad)
    fractional = tmp_path / "fractional.yaml"
    fractional.write_text("model: m.safetensors\nout: o\ncompress:\n  trials: 1.5\n")
    with pytest.raises(ValueError, match=r"CompressConfig\.trials must be an integer, got 1\.5"):
        load_recipe(fractional)  # it ran 2 trials
    with pytest.raises(ValueError, match="max_drop must be a finite number, got nan"):
        load_recipe(path, ["compress.max_drop=.nan"])
    with pytest.raises(ValueError, match=r"sensitivity_ratios must be a list .*got 5"):
        load_recipe(path, ["compress.sensitivity_ratios=5"])
    missing = tmp_path / "missing.yaml"
    missing.write_text("model: m.safetensors\n")
    with pytest.raises(ValueError, match="needs 'out'"):
        load_recipe(missing)


def test_a_schedule_setting_is_overridden_alone(tmp_path: Path) -> None:
    from slimkit.train import TrainConfig

    seed_cnn = next(p for p in RECIPES if p.stem == "seed-cnn")
    recipe = load_recipe(seed_cnn, ["compress.recover_train.epochs=4"])
    assert recipe.compress.recover_train == TrainConfig(epochs=4, lr=0.001)
    assert recipe.compress.qat_train == TrainConfig(epochs=1, lr=1e-4)
    # A recipe written before the schedules were TrainConfigs still loads, to the same run.
    old = tmp_path / "old.yaml"
    old.write_text(
        "model: m.safetensors\nout: o\ncompress:\n  recover_epochs: 4\n  recover_lr: 0.002\n"
    )
    cfg = load_recipe(old).compress
    assert cfg.recover_train == TrainConfig(epochs=4, lr=0.002)
    assert cfg.qat_train == TrainConfig(epochs=1, lr=0.0002)
    with pytest.raises(ValueError, match=r"unknown keys \['epoch'\] for TrainConfig"):
        load_recipe(seed_cnn, ["compress.recover_train.epoch=4"])
