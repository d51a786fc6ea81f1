"""Training recipes: every shipped reference recipe loads; bad keys name the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimkit.models import create_model
from slimkit.train import TrainConfig, TrainRecipe, load_train_recipe

REFERENCES = sorted((Path(__file__).parents[2] / "recipes" / "references").glob("*.yaml"))


def test_there_are_reference_recipes() -> None:
    names = {path.stem for path in REFERENCES}
    assert {"seed-cnn", "seed-cnn-slim", "resnet20", "mobilenet_v3_small"} <= names


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.stem)
def test_every_reference_recipe_loads_and_names_a_model(path: Path) -> None:
    recipe = load_train_recipe(path)
    assert recipe.out == f"references/{path.stem}.safetensors"
    assert recipe.train.augment == "crop-flip"
    assert create_model(recipe.model, in_channels=1, num_classes=10, image_size=28) is not None


def test_recipe_round_trips() -> None:
    recipe = TrainRecipe(model="seed-cnn", out="m.safetensors", train=TrainConfig(epochs=3))
    assert TrainRecipe.from_dict(recipe.to_dict()) == recipe


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model: seed-cnn\nout: m.safetensors\nepochs: 3\n",
            r"unknown keys \['epochs'\] for TrainRecipe; valid",
        ),
        (
            "model: seed-cnn\nout: m.safetensors\ntrain: {epoch: 3}\n",
            r"unknown keys \['epoch'\] for TrainConfig",
        ),
        ("model: seed-cnn\nout: m.safetensors\ntrain: {augment: blur}\n", r"augment must be one"),
        ("model: seed-cnn\ntrain: {epochs: 3}\n", r"r.yaml: TrainRecipe needs \['out'\]"),
        (
            "model: seed-cnn\nout: m.safetensors\ntrain: 3\n",
            r"TrainRecipe.train is a mapping of TrainConfig fields",
        ),
        ("- seed-cnn\n", r"a training recipe is a mapping"),
    ],
)
def test_bad_recipes_are_refused_with_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_train_recipe(path)
