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


def _saved(**knobs: object) -> dict:
    return {"compress": CompressConfig(**knobs).to_dict(), "data": {"name": "fashion-mnist"}}


def test_stage_inputs_decide_what_a_resumed_run_redoes() -> None:
    from slimkit.search._config import stage_inputs

    def changed(a: dict, b: dict) -> list[str]:
        stages = ("baseline", "sensitivity", "plan", "search", "polish", "verify")
        return [s for s in stages if stage_inputs(a, s) != stage_inputs(b, s)]

    latency = _saved(goal="latency")
    # The size goal with the latency goal's channel multiple reuses its sensitivity curves.
    assert changed(latency, _saved(goal="size", round_to=8))[0] == "plan"
    assert changed(latency, _saved(goal="size"))[0] == "sensitivity"  # multiples of 1
    assert changed(latency, _saved(goal="latency", round_to=8)) == []  # 8 is the default
    assert changed(latency, _saved(trials=12)) == ["search", "polish", "verify"]
    assert changed(latency, _saved(polish_epochs=3)) == ["polish", "verify"]
    assert changed(latency, _saved(margin_se=0.0)) == ["verify"]
    assert changed(latency, _saved(recover_epochs=5))[0] == "search"
    assert changed(latency, _saved(sensitivity_images=500))[0] == "sensitivity"
    other_data = {**latency, "data": {"name": "fashion-mnist", "limit_train": 100}}
    assert changed(latency, other_data)[0] == "baseline"
    # A run saved before a knob existed reads as its default.
    old = {**latency, "compress": dict(latency["compress"])}
    del old["compress"]["polish_epochs"], old["compress"]["polish_trials"]
    assert changed(latency, old) == []
    # ... except where the default changed what a stage does: runs from before depth pruning
    # planned without it, so their plan (and everything after it) is redone.
    older = {**latency, "compress": dict(latency["compress"])}
    del older["compress"]["remove_blocks"]
    assert changed(latency, older)[0] == "plan"
    assert changed(latency, _saved(remove_blocks=False))[0] == "plan"
