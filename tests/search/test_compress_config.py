from __future__ import annotations

import pytest

from slimkit.search import CompressConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_drop": -0.1}, "max_drop"),
        ({"goal": "speed"}, "goal"),
        ({"backend": "tflite"}, "backend"),
        ({"recover": "mse"}, "recover"),
        ({"trials": 0}, "trials"),
        ({"time_budget_s": 0}, "time_budget_s"),
        ({"min_macs_keep": 0.0}, "min_macs_keep"),
        ({"min_macs_keep": 0.5, "max_macs_keep": 0.4}, "max_macs_keep"),
        ({"max_sparsity": 1.0}, "max_sparsity"),
        ({"sensitivity_ratios": (0.5, 1.0)}, "sensitivity_ratios"),
        ({"recover_epochs": -1}, "recover_epochs"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompressConfig(**kwargs)


def test_round_trip_and_unknown_keys() -> None:
    cfg = CompressConfig(goal="size", sensitivity_ratios=(0.2, 0.4, 0.8))
    assert CompressConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"valid keys: .*max_drop"):
        CompressConfig.from_dict({"max_dorp": 1.0})


def test_int8_only_on_onnxruntime() -> None:
    assert CompressConfig().int8
    assert not CompressConfig(backend="torch").int8
    assert not CompressConfig(quantize=False).int8
