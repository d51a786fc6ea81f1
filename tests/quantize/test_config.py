from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from slimkit import ConfigBase, TrainConfig
from slimkit.quantize import (
    SCHEMES,
    Bf16Config,
    Int4WeightOnlyConfig,
    Int8StaticConfig,
    QATConfig,
    QuantReport,
    config_from_dict,
    register_quantize_handler,
    register_scheme,
    scheme_of,
)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Int8StaticConfig(observer="histogram"), "observer"),
        (lambda: Int8StaticConfig(exclude="fc2"), "exclude"),
        (lambda: Int8StaticConfig(calib_batches=0), "calib_batches"),
        (lambda: Int8StaticConfig(reduce_range="yes"), "reduce_range"),
        (lambda: Int4WeightOnlyConfig(group_size=48), "group_size"),
        (lambda: QATConfig(train={"epochs": 1}), "train"),
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
        QATConfig(train=TrainConfig(epochs=2, lr=1e-4)),
        Int4WeightOnlyConfig(group_size=64),
        Bf16Config(),
    ],
)
def test_configs_round_trip_through_dicts(cfg: object) -> None:
    assert config_from_dict(cfg.to_dict()) == cfg  # type: ignore[attr-defined]


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="observer"):
        config_from_dict({"scheme": "int8-static", "obsrver": "mse"})


@dataclass(frozen=True, kw_only=True)
class _Tagged(ConfigBase):
    TAG = ("scheme", "test-tagged")
    bits: int = 8


@dataclass(frozen=True)
class _Untagged:
    bits: int = 8


def _apply(model: Any, cfg: Any, **_: Any) -> Any:
    return model, QuantReport()


def test_register_quantize_handler_names_the_scheme_from_the_config_tag() -> None:
    scheme = register_quantize_handler(_Tagged, _apply, lambda model, cfg: model)
    try:
        assert scheme.name == "test-tagged" and SCHEMES.get("test-tagged") is scheme
        assert config_from_dict({"scheme": "test-tagged", "bits": 4}) == _Tagged(bits=4)
        with pytest.raises(ValueError, match="quantization scheme 'test-tagged' is already"):
            register_scheme("test-tagged", _Untagged, _apply, lambda model, cfg: model)
    finally:
        SCHEMES.unregister("test-tagged")
    with pytest.raises(ValueError, match=r"does not name its scheme: use register_scheme"):
        register_quantize_handler(_Untagged, _apply, lambda model, cfg: model)
    with pytest.raises(ValueError, match=r"_Tagged.TAG is \('scheme', 'test-tagged'\)"):
        register_scheme("other", _Tagged, _apply, lambda model, cfg: model)
    register_scheme("test-plain", _Untagged, _apply, lambda model, cfg: model)
    try:  # a plain dataclass works too: the registry supplies its scheme key
        assert scheme_of(_Untagged()) == "test-plain"
        assert config_from_dict({"scheme": "test-plain", "bits": 2}) == _Untagged(bits=2)
        with pytest.raises(ValueError, match="_Untagged is scheme 'test-plain' already"):
            register_scheme("test-plain-2", _Untagged, _apply, lambda model, cfg: model)
    finally:
        SCHEMES.unregister("test-plain")
    assert not {"other", "test-tagged", "test-plain-2"} & set(SCHEMES)


def test_every_builtin_scheme_is_registered_under_its_config_tag() -> None:
    for name in SCHEMES:
        cls = SCHEMES.get(name).config_type
        assert ("scheme", name) == cls.TAG
        assert scheme_of(cls()) == name
    with pytest.raises(TypeError, match="register_scheme"):
        scheme_of(object())
