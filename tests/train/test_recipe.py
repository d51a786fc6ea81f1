"""Training recipes: every shipped reference recipe loads; bad keys name the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
    if recipe.model.startswith("timm:"):
        pytest.importorskip("timm")
    model = create_model(
        recipe.model, model_args=recipe.model_args, in_channels=1, num_classes=10, image_size=28
    )
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_a_recipe_shapes_its_model_with_model_args(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "model: torchvision:mobilenet_v2\nmodel_args: {width_mult: 0.5, dropout: 0.1}\n"
        "out: m.safetensors\n"
    )
    recipe = load_train_recipe(path)
    assert recipe.model_args == {"width_mult": 0.5, "dropout": 0.1}
    assert TrainRecipe.from_dict(recipe.to_dict()) == recipe
    empty = tmp_path / "e.yaml"
    empty.write_text("model: seed-cnn\nmodel_args:\nout: m.safetensors\n")
    assert load_train_recipe(empty).model_args == {}


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
        (
            "model: seed-cnn\nout: m.safetensors\nmodel_args: {act: {name: gelu}}\n",
            r"TrainRecipe.model_args 'act' is a dict; model_args values are strings",
        ),
        (
            "model: seed-cnn\nout: m.safetensors\nmodel_args: [4]\n",
            r"TrainRecipe.model_args is a mapping of argument names to values",
        ),
    ],
)
def test_bad_recipes_are_refused_with_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_train_recipe(path)
