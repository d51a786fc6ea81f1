from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit import (
    AGP,
    Global,
    PerLayer,
    Splits,
    TrainConfig,
    UnstructuredConfig,
    prune,
)
from slimkit.prune import _unstructured, prunable_layers, weight_sparsity
from slimkit.testing import TinyConvNet, seeded_model

SPARSITIES = [0.0, 0.1, 1 / 3, 0.5, 0.9, 0.99]


def _zeros(module: nn.Module) -> int:
    return int((module.weight == 0).sum())


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_global_sparsity_is_exact(sparsity: float) -> None:
    model = TinyConvNet()
    pruned = prune(model, UnstructuredConfig(sparsity=sparsity), progress=False)
    layers = prunable_layers(pruned)
    total = sum(m.weight.numel() for m in layers.values())
    assert total == 36 + 72 + 160
    assert sum(_zeros(m) for m in layers.values()) == round(sparsity * total)


def test_global_magnitude_prunes_the_smallest_weights_anywhere() -> None:
    model = seeded_model("seed-cnn-slim")
    pruned = prune(model, UnstructuredConfig(sparsity=0.7, scope=Global()), progress=False)
    before = torch.cat(
        [m.weight.detach().abs().reshape(-1) for m in prunable_layers(model).values()]
    )
    after = torch.cat([m.weight.detach().reshape(-1) for m in prunable_layers(pruned).values()])
    assert int((after == 0).sum()) == round(0.7 * len(before))
    assert before[after == 0].max() <= before[after != 0].min()
    assert torch.equal(after[after != 0], before[after != 0] * after[after != 0].sign())
    # the layers end up with different sparsities: one threshold, not one ratio
    ratios = {n: _zeros(m) / m.weight.numel() for n, m in prunable_layers(pruned).items()}
    assert max(ratios.values()) - min(ratios.values()) > 0.05


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_per_layer_sparsity_is_exact_in_every_layer(sparsity: float) -> None:
    cfg = UnstructuredConfig(sparsity=sparsity, scope=PerLayer(), importance="random")
    pruned = prune(TinyConvNet(), cfg, progress=False)
    for module in prunable_layers(pruned).values():
        assert _zeros(module) == round(sparsity * module.weight.numel())


def test_per_layer_overrides() -> None:
    cfg = UnstructuredConfig(sparsity=0.5, scope=PerLayer({"fc": 0.25, "conv": 0.0}))
    pruned = prune(TinyConvNet(), cfg, progress=False)
    assert (_zeros(pruned.conv), _zeros(pruned.grouped), _zeros(pruned.fc)) == (0, 36, 40)


def test_biases_are_never_pruned() -> None:
    model = TinyConvNet()
    pruned = prune(model, UnstructuredConfig(sparsity=0.9), progress=False)
    for name in ("conv", "grouped", "fc"):
        assert torch.equal(getattr(pruned, name).bias, getattr(model, name).bias)


@pytest.mark.parametrize("exclude", [("fc",), ("f*",)])
def test_excluded_layers_are_untouched(exclude: tuple[str, ...]) -> None:
    model = TinyConvNet()
    pruned = prune(model, UnstructuredConfig(sparsity=0.5, exclude=exclude), progress=False)
    assert torch.equal(pruned.fc.weight, model.fc.weight)
    assert _zeros(pruned.conv) + _zeros(pruned.grouped) == round(0.5 * (36 + 72))
    assert weight_sparsity(pruned, exclude) == round(0.5 * 108) / 108


def test_input_model_is_untouched_unless_inplace() -> None:
    model = TinyConvNet()
    before = _state(model)
    pruned = prune(model, UnstructuredConfig(sparsity=0.5), progress=False)
    assert pruned is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert weight_sparsity(model) == 0.0

    same = prune(model, UnstructuredConfig(sparsity=0.5), inplace=True, progress=False)
    assert same is model
    assert weight_sparsity(model) == pytest.approx(134 / 268)
    assert all(torch.equal(pruned.state_dict()[k], v) for k, v in model.state_dict().items())


def test_already_zero_weights_stay_pruned() -> None:
    model = TinyConvNet()
    with torch.no_grad():
        model.fc.weight[:, :4] = 0.0  # 40 zeros that a second pass must not revive
    pruned = prune(model, UnstructuredConfig(sparsity=0.2, importance="random"), progress=False)
    assert bool((pruned.fc.weight[:, :4] == 0).all())
    assert sum(_zeros(m) for m in prunable_layers(pruned).values()) == round(0.2 * 268)


def test_pruned_weights_stay_zero_through_fine_tuning(fmnist: Splits) -> None:
    model = seeded_model("seed-cnn-slim")
    cfg = UnstructuredConfig(sparsity=0.8)
    untuned = prune(model, cfg, progress=False)
    tuned = prune(model, cfg, data=fmnist, train=TrainConfig(epochs=1), progress=False)
    untuned_layers = prunable_layers(untuned)
    for name, module in prunable_layers(tuned).items():
        pruned_here = untuned_layers[name].weight == 0
        assert bool((module.weight[pruned_here] == 0).all()), name
        assert int((module.weight == 0).sum()) == int(pruned_here.sum()), name  # none added
        assert not torch.equal(module.weight, untuned_layers[name].weight), f"{name} not tuned"


def test_gradual_pruning_keeps_zeros_through_every_fine_tuning_step(
    fmnist: Splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_train = _unstructured.run_training
    steps: list[float] = []

    def checked_train(model: nn.Module, *args: object, **kwargs: object) -> object:
        zero_before = {n: m.weight == 0 for n, m in prunable_layers(model).items()}
        result = real_train(model, *args, **kwargs)  # type: ignore[arg-type]
        for name, module in prunable_layers(model).items():
            assert bool((module.weight[zero_before[name]] == 0).all()), name
        steps.append(weight_sparsity(model))
        return result

    monkeypatch.setattr(_unstructured, "run_training", checked_train)
    cfg = UnstructuredConfig(sparsity=0.8, schedule=AGP(steps=2))
    tuned = prune(
        seeded_model("seed-cnn-slim"),
        cfg,
        data=fmnist,
        train=TrainConfig(epochs=2),
        progress=False,
    )
    assert steps == pytest.approx(AGP(steps=2).sparsities(0.8), abs=1e-4)  # 0.7 then 0.8
    assert weight_sparsity(tuned) == pytest.approx(0.8, abs=1e-4)


@pytest.mark.parametrize("importance", ["taylor", "activation"])
def test_data_driven_importance(fmnist: Splits, importance: str) -> None:
    cfg = UnstructuredConfig(sparsity=0.6, importance=importance, calib_batches=2)
    pruned = prune(seeded_model("seed-cnn-slim"), cfg, data=fmnist, progress=False)
    assert weight_sparsity(pruned) == pytest.approx(0.6, abs=1e-4)
    with pytest.raises(ValueError, match="need data=Splits"):
        prune(seeded_model("seed-cnn-slim"), cfg, progress=False)


def test_agp_cubic_ramp() -> None:
    # s_t = s_f + (s_i - s_f) * (1 - t/n)^3
    assert AGP(steps=4).sparsities(0.8) == pytest.approx([0.4625, 0.7, 0.7875, 0.8])
    assert AGP(steps=3, initial_sparsity=0.2).sparsities(0.8) == pytest.approx(
        [0.8 - 0.6 * 8 / 27, 0.8 - 0.6 / 27, 0.8]
    )
    assert AGP(steps=1).sparsities(0.5) == [0.5]
    assert AGP(steps=2, initial_sparsity=0.9).sparsities(0.5) == [0.5, 0.5]  # never above final


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 1.0}, r"sparsity must be in \[0, 1\)"),
        ({"sparsity": -0.1}, r"sparsity must be in \[0, 1\)"),
        ({"sparsity": 0.5, "importance": "l1"}, r"importance must be one of \['activation', 'ma"),
        ({"sparsity": 0.5, "exclude": "fc"}, "exclude must be a tuple of names, not a string"),
        ({"sparsity": 0.5, "scope": "global"}, r"scope must be Global\(\) or PerLayer"),
        ({"sparsity": 0.5, "schedule": "agp"}, r"schedule must be OneShot\(\) or AGP"),
        ({"sparsity": 0.5, "calib_batches": 0}, "calib_batches must be >= 1"),
        # NaN compares false with every bound: each number is checked to be finite first.
        ({"sparsity": float("nan")}, "sparsity must be a finite number, got nan"),
        ({"sparsity": "0.5"}, "sparsity must be a number, got '0.5'"),
        ({"sparsity": 0.5, "calib_batches": 1.5}, "calib_batches must be an integer, got 1.5"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UnstructuredConfig(**kwargs)


def test_value_object_validation() -> None:
    with pytest.raises(ValueError, match=r"PerLayer.overrides\['fc'\] must be in \[0, 1\)"):
        PerLayer({"fc": 1.0})
    with pytest.raises(ValueError, match=r"AGP\.steps must be >= 1"):
        AGP(steps=0)
    with pytest.raises(ValueError, match=r"AGP.initial_sparsity must be in \[0, 1\)"):
        AGP(initial_sparsity=1.0)
    with pytest.raises(ValueError, match=r"PerLayer.overrides\['fc'\] must be a finite number"):
        PerLayer({"fc": float("nan")})
    with pytest.raises(ValueError, match=r"AGP\.steps must be an integer, got 2\.5"):
        AGP(steps=2.5)
    with pytest.raises(ValueError, match=r"AGP\.initial_sparsity must be a finite number"):
        AGP(initial_sparsity=float("nan"))


def test_exclude_pattern_matching_no_layer_lists_the_layers() -> None:
    cfg = UnstructuredConfig(sparsity=0.5, exclude=("fc2",))
    with pytest.raises(
        ValueError, match=r"\['fc2'\] match no Conv/Linear layer; layers are: conv, grouped, fc"
    ):
        prune(TinyConvNet(), cfg, progress=False)
    with pytest.raises(ValueError, match="every prunable layer is excluded"):
        prune(TinyConvNet(), UnstructuredConfig(sparsity=0.5, exclude=("*",)), progress=False)


def test_prune_rejects_an_unknown_config_type() -> None:
    # Other packages may register more config types (e.g. slimkit.text's encoder pruning).
    with pytest.raises(
        TypeError, match=r"prune\(\) takes one of UnstructuredConfig, StructuredConfig.*, got dict"
    ):
        prune(TinyConvNet(), {"sparsity": 0.5})


def test_config_to_dict() -> None:
    cfg = UnstructuredConfig(sparsity=0.5, scope=PerLayer({"fc": 0.1}), schedule=AGP(steps=2))
    assert cfg.to_dict() == {
        "method": "unstructured",
        "sparsity": 0.5,
        "importance": "magnitude",
        "scope": {"type": "per-layer", "overrides": {"fc": 0.1}},
        "exclude": [],
        "schedule": {"type": "agp", "steps": 2, "initial_sparsity": 0.0},
        "calib_batches": 16,
    }
