"""DistillConfig validation and round trips."""

from __future__ import annotations

import pytest

from slimkit import DistillConfig, TrainConfig


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan")])
def test_temperature_must_be_positive(temperature: float) -> None:
    with pytest.raises(ValueError, match=r"DistillConfig\.temperature must be a finite number > 0"):
        DistillConfig(temperature=temperature)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -0.1}, r"alpha must be in \[0, 1\]"),
        ({"alpha": 1.01}, r"alpha must be in \[0, 1\]"),
        ({"hint_weight": -1.0}, "hint_weight must be a finite number >= 0"),
        ({"attention_weight": 1.0}, "attention_weight > 0 needs layers"),
        ({"hint_layers": "everything"}, "must be 'auto' or a tuple"),
        ({"hint_layers": (("conv1",),)}, "pairs of module names"),
        ({"hint_layers": (("conv1", ""),)}, "pairs of module names"),
        ({"train": {"epochs": 1}}, "must be a slimkit.TrainConfig"),
        ({"cache_teacher": "yes"}, "cache_teacher must be True or False"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DistillConfig(**kwargs)


def test_the_config_is_frozen_and_keyword_only() -> None:
    cfg = DistillConfig()
    with pytest.raises(AttributeError):
        cfg.alpha = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        DistillConfig(4.0)  # type: ignore[misc]


def test_round_trip_through_a_plain_dict() -> None:
    cfg = DistillConfig(
        temperature=2.0,
        alpha=0.5,
        hint_layers=[["conv1", "layer1"], ("conv2", "layer2")],  # lists are normalised
        attention_weight=10.0,
        train=TrainConfig(epochs=3, lr=0.01, optimizer="sgd"),
        cache_teacher=False,
    )
    assert cfg.hint_layers == (("conv1", "layer1"), ("conv2", "layer2"))
    assert DistillConfig.from_dict(cfg.to_dict()) == cfg
    auto = DistillConfig(hint_layers="auto")
    assert DistillConfig.from_dict(auto.to_dict()) == auto and auto.uses_features


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['temp'\] for DistillConfig; valid: "):
        DistillConfig.from_dict({"temp": 2.0})
    with pytest.raises(ValueError, match=r"unknown keys \['epoch'\] for TrainConfig"):
        DistillConfig.from_dict({"train": {"epoch": 2}})


def test_logit_loss_and_beta_are_validated_and_round_trip() -> None:
    with pytest.raises(ValueError, match=r"logit_loss must be one of \['dkd', 'kd'\]"):
        DistillConfig(logit_loss="hinton")
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        DistillConfig(logit_loss="dkd", beta=-2.0)
    cfg = DistillConfig(logit_loss="dkd", beta=4.0, alpha=0.5)
    assert DistillConfig.from_dict(cfg.to_dict()) == cfg
