"""Structured pruning: exactness of the surgery, goals, rounding, bad input, artifacts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import slimkit
from slimkit import StructuredConfig
from slimkit.testing import (
    ConcatNet,
    TinyConvNet,
    exactness_gap,
    fixed_init_,
    random_splits,
    torchvision_case,
)

X28 = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


@pytest.mark.parametrize(
    ("name", "build", "example"),
    [
        ("seed-cnn", lambda: fixed_init_(slimkit.create_model("seed-cnn")), X28),
        ("resnet20", lambda: fixed_init_(slimkit.create_model("resnet20")), X28),
        ("concat", lambda: fixed_init_(ConcatNet()), torch.randn(1, 1, 8, 8)),
        ("grouped", TinyConvNet, torch.randn(1, 1, 8, 8)),
        (
            "mobilenet_v2",
            lambda: fixed_init_(torchvision_case("mobilenet_v2")[0], scale=0.1),
            torch.randn(1, 3, 32, 32),
        ),
    ],
)
def test_removing_zeroed_channels_is_exact(name: str, build, example: torch.Tensor) -> None:
    model = build().eval()
    with torch.no_grad():
        scale = model(example).abs().max().item()
    assert scale > 0
    assert exactness_gap(model, example, ratio=0.5) <= 1e-5 * scale + 1e-7


def test_prune_returns_a_smaller_copy_and_leaves_the_input_alone() -> None:
    model = slimkit.create_model("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = slimkit.prune(model, StructuredConfig(ratio=0.5), example_inputs=X28)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert slimkit.count_macs(pruned, X28) < 0.4 * slimkit.count_macs(model, X28)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    assert pruned(X28).shape == (1, 10)
    assert pruned.fc.out_features == 10  # the classifier's outputs are kept


def test_inplace_turns_the_model_itself_into_the_pruned_one() -> None:
    model = slimkit.create_model("seed-cnn")
    result = slimkit.prune(model, StructuredConfig(ratio=0.5), example_inputs=X28, inplace=True)
    assert result is model and model.conv1.out_channels == 8 and model.fc1.in_features == 16 * 49


def test_round_to_keeps_widths_multiples() -> None:
    pruned = slimkit.prune(
        slimkit.create_model("resnet20"),
        StructuredConfig(ratio=0.3, round_to=8),
        example_inputs=X28,
    )
    assert all(w % 8 == 0 for w in _widths(pruned).values())


def test_round_to_larger_than_a_layer_leaves_it_and_says_so() -> None:
    pruned = slimkit.prune(
        slimkit.create_model("seed-cnn"),
        StructuredConfig(ratio=0.5, round_to=64),
        example_inputs=X28,
    )
    assert (pruned.conv1.out_channels, pruned.conv2.out_channels, pruned.fc1.out_features) == (
        16,
        32,
        64,
    )
    notes = [e["note"] for e in pruned.slimkit_prune_report["left_unpruned"] if "note" in e]
    assert len(notes) == 2 and "fewer than round_to=64" in notes[0]


def test_per_layer_overrides() -> None:
    cfg = StructuredConfig(ratio=0.5, scope=slimkit.PerLayer({"conv2": 0.25}))
    pruned = slimkit.prune(slimkit.create_model("seed-cnn"), cfg, example_inputs=X28)
    assert (pruned.conv1.out_channels, pruned.conv2.out_channels) == (8, 24)


def test_global_scope_reaches_the_overall_ratio() -> None:
    model = slimkit.create_model("resnet20")
    pruned = slimkit.prune(
        model, StructuredConfig(ratio=0.4, scope=slimkit.Global()), example_inputs=X28
    )
    removed = pruned.slimkit_prune_report["steps"][0]["units_removed"]
    assert removed == round(0.4 * 448)


@pytest.mark.parametrize("scope", [slimkit.PerLayer(), slimkit.Global()])
def test_target_macs_is_met_within_five_percent(scope) -> None:
    model = slimkit.create_model("resnet20")
    pruned = slimkit.prune(
        model, StructuredConfig(target_macs=0.5, scope=scope), example_inputs=X28
    )
    fraction = slimkit.count_macs(pruned, X28) / slimkit.count_macs(model, X28)
    assert abs(fraction - 0.5) <= 0.05 * 0.5


def test_target_latency_is_met_within_ten_percent(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in clock (latency proportional to MACs, plus 3% noise each way in turn): the
    # search's logic for a measured target is tested, not this machine's timer.
    from slimkit.prune import _structured

    calls = iter(range(1000))

    def clock(model: nn.Module, reference: nn.Module, x: torch.Tensor, threads: object) -> float:
        noise = 1.03 if next(calls) % 2 else 0.97
        return noise * slimkit.count_macs(model, x) / slimkit.count_macs(reference, x)

    monkeypatch.setattr(_structured, "_latency_ratio", clock)
    model = slimkit.create_model("resnet20")
    pruned = slimkit.prune(model, StructuredConfig(target_latency=0.5), example_inputs=X28)
    fraction = pruned.slimkit_prune_report["steps"][0]["fraction"]
    assert abs(fraction - 0.5) <= 0.1 * 0.5  # as measured during the search


def test_agp_schedule_fine_tunes_between_steps() -> None:
    splits = random_splits(train=64, val=16, test=16)
    cfg = StructuredConfig(ratio=0.5, schedule=slimkit.AGP(steps=2))
    pruned = slimkit.prune(
        slimkit.create_model("seed-cnn"),
        cfg,
        data=splits,
        train=slimkit.TrainConfig(epochs=2, batch_size=32),
        progress=False,
    )
    assert len(pruned.slimkit_prune_report["steps"]) == 2
    assert pruned.conv1.out_channels == 8


@pytest.mark.parametrize(
    "criterion", ["l1", "l2", "bn-scale", "taylor", "activation", "apoz", "random"]
)
def test_every_criterion_prunes(criterion: str) -> None:
    splits = random_splits(train=32)
    cfg = StructuredConfig(ratio=0.5, importance=criterion, calib_batches=1)
    pruned = slimkit.prune(slimkit.create_model("resnet20"), cfg, data=splits, progress=False)
    assert pruned.conv1.out_channels == 8


def test_magnitude_removes_the_weakest_channels() -> None:
    model = slimkit.create_model("seed-cnn")
    with torch.no_grad():
        model.conv1.weight[[3, 5]] *= 1e-3
    pruned = slimkit.prune(model, StructuredConfig(ratio=0.125), example_inputs=X28)
    kept = [i for i in range(16) if i not in (3, 5)]
    assert torch.equal(pruned.conv1.weight, model.conv1.weight[kept])


def test_data_criteria_need_data() -> None:
    with pytest.raises(ValueError, match="needs data= or calib_data="):
        slimkit.prune(
            slimkit.create_model("seed-cnn"), StructuredConfig(ratio=0.5, importance="taylor")
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio": 1.0}, r"ratio must be in \[0, 1\)"),
        ({"ratio": -0.1}, r"ratio must be in \[0, 1\)"),
        ({}, "exactly one of ratio="),
        ({"ratio": 0.5, "target_macs": 0.5}, "exactly one of ratio="),
        ({"target_macs": 0.0}, r"target_macs must be in \(0, 1\]"),
        ({"ratio": 0.5, "round_to": 0}, "round_to must be an integer >= 1"),
        ({"ratio": 0.5, "importance": "l3"}, "importance must be one of"),
        ({"ratio": 0.5, "ignore": "fc"}, "tuple of names"),
        ({"ratio": float("nan")}, "ratio must be a finite number, got nan"),
        ({"target_macs": float("inf")}, "target_macs must be a finite number, got inf"),
        ({"target_latency": float("nan")}, "target_latency must be a finite number"),
        ({"ratio": 0.5, "max_ratio": float("nan")}, "max_ratio must be a finite number"),
        ({"ratio": 0.5, "calib_batches": 2.5}, "calib_batches must be an integer, got 2.5"),
        ({"ratio": 0.5, "latency_threads": -2}, "latency_threads must be >= 1, got -2"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StructuredConfig(**kwargs)


def test_config_round_trips_to_a_dict() -> None:
    cfg = StructuredConfig(target_macs=0.5, round_to=8, ignore=("fc1",))
    data = cfg.to_dict()
    assert (
        data["method"] == "structured" and data["target_macs"] == 0.5 and data["ignore"] == ["fc1"]
    )


def test_everything_ignored_is_a_clear_error() -> None:
    model = slimkit.create_model("seed-cnn")
    with pytest.raises(slimkit.PruningTargetError, match=r"nothing can be pruned.*ignored"):
        slimkit.prune(model, StructuredConfig(target_macs=0.5, ignore=("*",)), example_inputs=X28)


def test_unreachable_target_reports_what_was_reachable() -> None:
    model = slimkit.create_model("seed-cnn")
    with pytest.raises(slimkit.PruningTargetError, match="cannot reach 1% of the original") as info:
        slimkit.prune(model, StructuredConfig(target_macs=0.01), example_inputs=X28)
    assert 0.01 < info.value.report["reachable_fraction"] < 1


def test_untraceable_model_is_a_clear_error_and_the_model_is_untouched() -> None:
    model = slimkit.create_model("seed-cnn")
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    with pytest.raises(slimkit.UnsupportedOpError, match="forward pass failed"):
        slimkit.prune(model, StructuredConfig(ratio=0.5), example_inputs=torch.randn(1, 2, 28, 28))
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes


@pytest.mark.parametrize(
    ("name", "kwargs", "example"),
    [
        ("resnet20", {}, X28),
        ("seed-cnn", {}, X28),
        (
            "torchvision:mobilenet_v2",
            {"in_channels": 3, "image_size": 32},
            torch.randn(1, 3, 32, 32),
        ),
    ],
)
def test_pruned_artifact_loads_without_re_pruning(
    tmp_path, name: str, kwargs: dict, example
) -> None:
    model = slimkit.create_model(name, **kwargs)
    pruned = slimkit.prune(model, StructuredConfig(ratio=0.4, round_to=2), example_inputs=example)
    path = slimkit.save(pruned, tmp_path / "p.safetensors")
    spec = slimkit.read_spec(path)
    assert spec["format_version"] in (3, 4) and spec["structure"]["tensors"]  # 4: packed
    loaded = slimkit.load(path)
    with torch.no_grad():
        assert torch.equal(loaded(example), pruned.eval()(example))
    slimkit.save(loaded, tmp_path / "again.safetensors")  # the structure survives a re-save
    assert slimkit.read_spec(tmp_path / "again.safetensors")["structure"] == spec["structure"]


def test_pruning_a_pruned_model_accumulates_its_structure(tmp_path) -> None:
    model = slimkit.create_model("seed-cnn")
    once = slimkit.prune(model, StructuredConfig(ratio=0.5), example_inputs=X28)
    twice = slimkit.prune(copy.deepcopy(once), StructuredConfig(ratio=0.5), example_inputs=X28)
    assert twice.conv1.out_channels == 4
    loaded = slimkit.load(slimkit.save(twice, tmp_path / "p.safetensors"))
    assert loaded.conv1.out_channels == 4 and loaded.fc1.in_features == 8 * 49


def test_agp_schedule_toward_a_macs_target() -> None:
    model = slimkit.create_model("resnet20")
    cfg = StructuredConfig(target_macs=0.5, schedule=slimkit.AGP(steps=2))
    pruned = slimkit.prune(model, cfg, example_inputs=X28)
    steps = pruned.slimkit_prune_report["steps"]
    assert len(steps) == 2 and steps[0]["fraction"] > steps[1]["fraction"]
    fraction = slimkit.count_macs(pruned, X28) / slimkit.count_macs(model, X28)
    assert abs(fraction - 0.5) <= 0.05 * 0.5
