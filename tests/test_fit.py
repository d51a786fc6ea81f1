"""check_fits: a model that does not fit its data is one DataError line, before any work."""

from __future__ import annotations

import pytest

from slimkit import DataError
from slimkit._fit import check_fits
from slimkit.testing import TinyConvNet, random_splits, seeded_model


def test_a_model_that_fits_passes_and_keeps_its_mode() -> None:
    model = seeded_model("seed-cnn-slim").train()
    check_fits(model, random_splits(), "m.safetensors")
    assert model.training


def test_declared_classes_must_be_the_datas() -> None:
    three = random_splits(num_classes=3)
    with pytest.raises(DataError, match=r"m\.safetensors predicts 10 classes but random has 3"):
        check_fits(seeded_model("seed-cnn-slim"), three, "m.safetensors")


def test_a_model_built_outside_slimkit_is_checked_by_its_outputs() -> None:
    three = random_splits(num_classes=3)
    with pytest.raises(DataError, match="the model predicts 10 classes but random has 3"):
        check_fits(TinyConvNet(), three, "the model")
    check_fits(TinyConvNet(), three, "the model", logits=False)  # a user's metric scores it


def test_inputs_the_model_cannot_take_are_one_line() -> None:
    # a 1-channel model on RGB data gave a traceback in compress's baseline stage
    rgb = random_splits(input_shape=(3, 28, 28))
    model = seeded_model("seed-cnn-slim").train()
    with pytest.raises(DataError) as info:
        check_fits(model, rgb, "gray.safetensors")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "gray.safetensors does not run on random's inputs of shape [3, 28, 28]"
    )
    assert "input channels and image size" in message
    assert model.training  # left as it was, even after the failure
