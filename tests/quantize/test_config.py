from __future__ import annotations

import pytest

from slimkit import TrainConfig
from slimkit.quantize import (
    Bf16Config,
    Int4WeightOnlyConfig,
    Int8StaticConfig,
    QATConfig,
    config_from_dict,
)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Int8StaticConfig(observer="histogram"), "observer"),
        (lambda: Int8StaticConfig(exclude="fc2"), "exclude"),
        (lambda: Int8StaticConfig(calib_batches=0), "calib_batches"),
        (lambda: Int8StaticConfig(reduce_range="yes"), "reduce_range"),
        (lambda: Int4WeightOnlyConfig(group_size=48), "group_size"),
        (lambda: QATConfig(finetune={"epochs": 1}), "finetune"),
    ],
)
def test_bad_values_name_the_field(build: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build()  # type: ignore[operator]


def test_configs_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        Int8StaticConfig("minmax")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Int8StaticConfig().observer = "mse"  # type: ignore[misc]


@pytest.mark.parametrize(
    "cfg",
    [
        Int8StaticConfig(observer="mse", exclude=("fc2",)),
        QATConfig(finetune=TrainConfig(epochs=2, lr=1e-4)),
        Int4WeightOnlyConfig(group_size=64),
        Bf16Config(),
    ],
)
def test_configs_round_trip_through_dicts(cfg: object) -> None:
    assert config_from_dict(cfg.to_dict()) == cfg  # type: ignore[attr-defined]


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="observer"):
        config_from_dict({"scheme": "int8-static", "obsrver": "mse"})
