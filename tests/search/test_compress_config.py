from __future__ import annotations

from collections.abc import Iterator

import pytest

from slimkit.measure import Budget
from slimkit.search import CompressConfig
from slimkit.train import TrainConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_drop": -0.1}, "max_drop"),
        ({"goal": "speed"}, "goal"),
        ({"backend": "tflite"}, "backend"),
        ({"recover": "mse"}, "recover"),
        # an unknown criterion failed as a KeyError after the baseline stage
        (
            {"importance": "tayler"},
            r"importance must be one of \[.*'taylor'.*\] \(or a GroupImportance object\), got 'tayler'",
        ),
        ({"importance": 3}, "importance must be a name in"),
        ({"trials": 0}, "trials"),
        ({"time_budget_s": 0}, "time_budget_s"),
        ({"min_macs_keep": 0.0}, "min_macs_keep"),
        ({"min_macs_keep": 0.5, "max_macs_keep": 0.4}, "max_macs_keep"),
        ({"max_sparsity": 1.0}, "max_sparsity"),
        ({"sensitivity_ratios": (0.5, 1.0)}, "sensitivity_ratios"),
        ({"recover_train": {"epochs": 2}}, "recover_train must be a slimkit.TrainConfig"),
        ({"qat_train": TrainConfig(seed=3)}, r"qat_train.seed is not read: .*CompressConfig.seed"),
        ({"structure_cost": "flops"}, "structure_cost"),
        ({"structure_cost": "latency", "backend": "torch"}, "runtime backend"),
        ({"structure_cost": "latency", "quantize": False}, "quantize=True"),
        # NaN passed every `<` check: compress ran a trial, failed in Optuna, saved NaN
        ({"max_drop": float("nan")}, "max_drop must be a finite number, got nan"),
        ({"max_drop": float("inf")}, "max_drop must be a finite number, got inf"),
        ({"margin_se": float("nan")}, "margin_se must be a finite number"),
        ({"time_budget_s": float("inf")}, "time_budget_s must be a finite number"),
        ({"min_macs_keep": float("nan")}, "min_macs_keep must be a finite number"),
        ({"sensitivity_ratios": (0.3, float("nan"))}, "sensitivity_ratios must be a finite"),
        # kinds, as a recipe's YAML gives them: 1.5 trials ran 2, "0.5" was a traceback
        ({"trials": 1.5}, "trials must be an integer, got 1.5"),
        ({"trials": True}, "trials must be an integer, got True"),
        ({"max_drop": "0.5"}, "max_drop must be a number, got '0.5'"),
        ({"latency_threads": -2}, "latency_threads must be >= 1, got -2"),
        ({"latency_threads": 0}, "latency_threads must be >= 1, got 0"),
        ({"quantize": "no"}, "quantize must be true or false"),
        ({"sensitivity_ratios": 5}, "sensitivity_ratios must be a list"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompressConfig(**kwargs)


def test_round_trip_and_unknown_keys() -> None:
    cfg = CompressConfig(goal="size", sensitivity_ratios=(0.2, 0.4, 0.8))
    assert CompressConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(
        ValueError, match=r"unknown keys \['max_dorp'\] for CompressConfig; valid: \[.*'max_drop'"
    ):
        CompressConfig.from_dict({"max_dorp": 1.0})


def test_int8_only_on_onnxruntime() -> None:
    assert CompressConfig().int8
    assert not CompressConfig(backend="torch").int8
    assert not CompressConfig(quantize=False).int8
    assert CompressConfig(structure_cost="latency").keep_param == "latency_keep"


def test_the_structured_cost_defaults_by_goal() -> None:
    assert CompressConfig().cost == "macs"
    assert CompressConfig(structure_cost="latency", backend="openvino").cost == "latency"
    assert CompressConfig(goal="size").cost == "params"
    assert CompressConfig(goal="macs").cost == "macs"


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
    assert changed(latency, _saved(recover_train=TrainConfig(epochs=5)))[0] == "search"
    assert changed(latency, _saved(qat_train=TrainConfig(epochs=1, lr=1e-5)))[0] == "search"
    assert changed(latency, _saved(sensitivity_images=500))[0] == "sensitivity"
    other_data = {**latency, "data": {"name": "fashion-mnist", "limit_train": 100}}
    assert changed(latency, other_data)[0] == "baseline"
    # A knob missing from a saved config reads as its default (a run of an older layout,
    # whose defaults differed, is refused before its config is read: see test_layout.py).
    old = {**latency, "compress": dict(latency["compress"])}
    del old["compress"]["polish_epochs"], old["compress"]["polish_trials"]
    assert changed(latency, old) == []
    assert changed(latency, _saved(remove_blocks=False))[0] == "plan"
    size = _saved(goal="size")
    assert changed(size, _saved(goal="size", structure_cost="params")) == []
    assert changed(size, _saved(goal="size", structure_cost="macs"))[0] == "plan"


def test_cli_depth_and_channel_floor_options() -> None:
    from slimkit.cli._compress import config_from_args
    from slimkit.cli._main import build_parser

    def parsed(*extra: str) -> CompressConfig:
        argv = ["compress", "m.safetensors", "--data", "fashion-mnist", "--out", "r", *extra]
        return config_from_args(build_parser().parse_args(argv))

    default = parsed()
    assert default.remove_blocks and default.min_channels is None
    assert default.channel_floor == 16  # latency on int8 ONNX Runtime
    assert parsed("--goal", "size").channel_floor == 1
    assert parsed("--no-quantize").channel_floor == 1  # fp32 kernels do well on 8 channels
    assert parsed("--round-to", "4").channel_multiple == 4  # the user's multiple wins
    assert parsed("--goal", "size").channel_multiple == 1
    chosen = parsed("--no-remove-blocks", "--min-channels", "8")
    assert not chosen.remove_blocks and chosen.channel_floor == 8
    assert parsed("--goal", "size").cost == "params" and default.cost == "macs"
    assert parsed("--goal", "size", "--structure-cost", "macs").keep_param == "macs_keep"
    with pytest.raises(ValueError, match="min_channels must be >= 1"):
        CompressConfig(min_channels=0)


def test_dict_layout_is_what_run_directories_store() -> None:
    # state.json holds this dict and resume compares it: a change of its layout bumps the
    # version and teaches CompressConfig.upgrade to read the one before
    def top1(model: object, dataset: object) -> float:
        return 0.0

    data = CompressConfig(metric=top1, lower_is_better=True).to_dict()
    assert list(data) == ["version", *CompressConfig.__dataclass_fields__]
    assert data["version"] == CompressConfig.VERSION == 2
    assert data["recover_train"] == TrainConfig(epochs=2, lr=1e-3).to_dict()
    assert data["sensitivity_ratios"] == [0.3, 0.6] and data["importance"] == "l2"
    assert isinstance(data["metric"], str) and data["metric"].endswith("top1")
    assert "method" not in data and "class" not in data


def test_a_criterion_object_is_a_valid_importance() -> None:
    from slimkit.importance import MagnitudeGroupImportance
    from slimkit.search._config import stage_inputs

    criterion = MagnitudeGroupImportance(p=1)
    cfg = CompressConfig(importance=criterion)
    record = cfg.to_dict()["importance"]
    assert record["class"].endswith("MagnitudeGroupImportance")
    with pytest.raises(ValueError, match="cannot rebuild"):
        CompressConfig.from_dict(cfg.to_dict())
    # a run directory compares it by its record; the other knobs still resume as before
    saved = {"compress": cfg.to_dict(), "data": {"name": "fashion-mnist"}}
    assert stage_inputs(saved, "sensitivity")["importance"] == record
    assert stage_inputs(saved, "baseline") == stage_inputs(_saved(), "baseline")


def test_the_config_builds_the_budget_from_its_knobs() -> None:
    cfg = CompressConfig(max_drop=0.3, margin_se=2.5)
    assert cfg.budget == Budget(max_drop=0.3, margin_se=2.5)
    with pytest.raises(AttributeError):
        cfg.budget.max_drop = 1.0  # type: ignore[misc]  # frozen


# A compress configuration as state.json and summary.json held it before each training
# schedule was a TrainConfig (runs/demo/seed-cnn, runs/mnv3: `make demo`).
LAYOUT_1 = {
    "max_drop": 0.5, "goal": "latency", "backend": "auto", "trials": 6, "time_budget_s": None,
    "seed": 0, "importance": "l2", "recover": "kd", "recover_epochs": 2, "recover_lr": 0.001,
    "sensitivity_ratios": [0.3, 0.6], "sensitivity_images": 2000, "min_macs_keep": 0.1,
    "max_macs_keep": 1.0, "max_sparsity": 0.95, "quantize": True, "qat_epochs": 1,
    "latency_threads": 1, "round_to": None, "min_channels": None, "polish_epochs": 0,
    "polish_trials": 2, "margin_se": 1.0, "remove_blocks": True, "structure_cost": None,
    "metric": None, "lower_is_better": False,
}  # fmt: skip


def test_a_layout_1_config_loads_as_the_schedules_it_ran() -> None:
    cfg = CompressConfig.from_dict(LAYOUT_1)
    assert cfg == CompressConfig(trials=6, recover="kd", latency_threads=1)
    assert cfg.recover_train == TrainConfig(epochs=2, lr=1e-3)
    assert cfg.qat_train == TrainConfig(epochs=1, lr=1e-4)  # a tenth of the recovery's rate
    written = cfg.to_dict()
    assert written["version"] == 2 and "recover_epochs" not in written
    assert CompressConfig.from_dict(written) == cfg
    # Another recovery rate in layout 1 ran QAT at a tenth of it.
    other = CompressConfig.from_dict({**LAYOUT_1, "recover_lr": 0.002, "qat_epochs": 3})
    assert other.recover_train == TrainConfig(epochs=2, lr=0.002)
    assert other.qat_train == TrainConfig(epochs=3, lr=0.002 / 10)
    # A recipe of layout 1 states only some knobs: the rest keep their defaults.
    assert CompressConfig.from_dict({"recover_epochs": 4}).recover_train == TrainConfig(epochs=4)
    with pytest.raises(ValueError, match=r"has both recover_train and \['recover_epochs'\]"):
        CompressConfig.from_dict({"recover_epochs": 4, "recover_train": {"epochs": 4}})


def test_a_run_of_layout_1_keeps_every_stage_and_its_study_when_resumed() -> None:
    from slimkit.search._config import stage_inputs

    old = {"compress": LAYOUT_1, "data": {"name": "fashion-mnist"}, "storage": None}
    new = {**old, "compress": CompressConfig.from_dict(LAYOUT_1).to_dict()}
    stages = ("baseline", "sensitivity", "plan", "recovery", "study", "polish", "verify")
    assert [s for s in stages if stage_inputs(old, s) != stage_inputs(new, s)] == []
    # The study inputs state.json recorded then read as the ones this layout computes.
    recorded = {k: v for k, v in stage_inputs(old, "study").items() if k != "version"}
    del recorded["recover_train"], recorded["qat_train"]
    recorded.update(recover_epochs=2, recover_lr=0.001, qat_epochs=1)
    assert CompressConfig.upgraded(recorded) == stage_inputs(new, "study")
    # A partial schedule in a recipe is completed from the knob's default.
    partial = CompressConfig.from_dict({"qat_train": {"epochs": 2}})
    assert partial.qat_train == TrainConfig(epochs=2, lr=1e-4)


def test_the_cli_flags_fill_the_schedules() -> None:
    from slimkit.cli._compress import config_from_args
    from slimkit.cli._main import build_parser

    def parsed(*extra: str) -> CompressConfig:
        argv = ["compress", "m.safetensors", "--data", "fashion-mnist", "--out", "r", *extra]
        return config_from_args(build_parser().parse_args(argv))

    assert parsed() == CompressConfig(latency_threads=None)  # the flags' defaults are the knobs'
    cfg = parsed("--recover-epochs", "3", "--recover-lr", "0.002", "--qat-epochs", "2")
    assert cfg.recover_train == TrainConfig(epochs=3, lr=0.002)
    assert cfg.qat_train == TrainConfig(epochs=2, lr=0.002 / 10)  # QAT at a tenth of the rate


@pytest.fixture()
def stand_in_runtimes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Two stand-in runtimes that want different channel multiples, the only ones installed."""
    from slimkit.runtime import RUNTIMES, ChannelMultiples, Runtime, register_runtime

    wants = {
        "stand-in-a": ChannelMultiples(int8=4, fp32=16),
        "stand-in-b": ChannelMultiples(int8=8),
    }
    for name, multiples in wants.items():
        register_runtime(
            Runtime(
                name=name,
                module="json",  # installed everywhere
                extra="none",
                load=lambda path, threads: None,  # type: ignore[arg-type,return-value]
                save=lambda graph, directory: [],
                kernel_times=lambda graph, batch, threads: [],
                channel_multiples=multiples,
            )
        )
    monkeypatch.setattr(Runtime, "available", lambda self: self.name in wants)
    yield list(wants)
    for name in wants:
        RUNTIMES.unregister(name)


def test_the_default_channel_multiple_follows_the_backend(stand_in_runtimes: list[str]) -> None:
    # A named runtime: its own multiple, for the graphs it will run (int8 unless --no-quantize).
    assert CompressConfig(backend="stand-in-a").channel_multiple == 4
    assert CompressConfig(backend="stand-in-a", quantize=False).channel_multiple == 16
    assert CompressConfig(backend="stand-in-b").channel_multiple == 8
    assert CompressConfig(backend="stand-in-b", quantize=False).channel_multiple == 8  # default
    # auto: every width is one that each installed runtime runs at full speed.
    assert CompressConfig().runtimes() == stand_in_runtimes
    assert CompressConfig().channel_multiple == 8
    assert CompressConfig(quantize=False).channel_multiple == 16
    # eager PyTorch declares none; other goals do not round; an explicit --round-to wins.
    assert CompressConfig(backend="torch").channel_multiple == 8
    assert CompressConfig(backend="stand-in-b", goal="macs").channel_multiple == 1
    assert CompressConfig(backend="stand-in-a", round_to=2).channel_multiple == 2
    assert CompressConfig(round_to=32, goal="size").channel_multiple == 32


def test_a_resumed_run_on_other_runtimes_redoes_what_the_multiple_changed(
    stand_in_runtimes: list[str],
) -> None:
    from slimkit.search._config import stage_inputs

    a, b = _saved(backend="stand-in-a"), _saved(backend="stand-in-b")
    # the measured original stays; the sensitivity curves were pruned in other multiples
    assert stage_inputs(a, "baseline") == stage_inputs(b, "baseline")
    assert stage_inputs(a, "sensitivity")["channel_multiple"] == 4
    assert stage_inputs(b, "sensitivity")["channel_multiple"] == 8
    pinned = _saved(backend="stand-in-a", round_to=8)
    assert stage_inputs(pinned, "sensitivity")["channel_multiple"] == 8
