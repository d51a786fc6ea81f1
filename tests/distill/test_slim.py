"""slim(): uniformly narrower models, warm or re-initialised, that save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit
from slimkit import slim
from slimkit.testing import fixed_init_, random_splits, seeded_model

X = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def _widths(model: nn.Module) -> dict[str, int]:
    return {
        name: module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    }


def test_half_width_seed_cnn_is_seed_cnn_slim() -> None:
    model = seeded_model("seed-cnn")
    half = slim(model, 0.5, example_inputs=X[:1])
    assert _widths(half) == {"conv1": 8, "conv2": 16, "fc1": 64, "fc2": 10}  # the head stays
    reference = slimkit.create_model("seed-cnn-slim")
    assert slimkit.count_macs(half, X[:1]) == slimkit.count_macs(reference, X[:1])
    assert slimkit.count_macs(half, X[:1]) < 0.3 * slimkit.count_macs(model, X[:1])
    assert _widths(model)["conv1"] == 16  # the input model is untouched
    assert half(X).shape == (4, 10)


def test_warm_start_keeps_trained_channels_and_scratch_does_not() -> None:
    model = seeded_model("seed-cnn")
    original = model.conv1.weight.detach().flatten(1)
    warm = slim(model, 0.5, example_inputs=X[:1])
    torch.manual_seed(1)  # seeded_model drew the original weights from seed 0's stream
    scratch = slim(model, 0.5, example_inputs=X[:1], init="scratch")

    def kept_rows(small: nn.Module) -> int:
        rows = small.conv1.weight.detach().flatten(1)
        return sum(bool((original == row).all(1).any()) for row in rows)

    assert kept_rows(warm) == 8 and kept_rows(scratch) == 0
    # Warm start keeps the most important (largest group L2) channels, not just any.
    norms = original.norm(dim=1)
    warm_rows = warm.conv1.weight.detach().flatten(1)
    kept = [int((original == row).all(1).nonzero()) for row in warm_rows]
    assert min(norms[kept]) >= 0.5 * torch.median(norms)
    assert _widths(warm) == _widths(scratch)


def test_scratch_resets_batch_norm_statistics() -> None:
    model = fixed_init_(seeded_model("resnet20"), scale=0.1)
    model.bn1.running_mean.fill_(3.0)
    scratch = slim(model, 0.5, example_inputs=X[:1], init="scratch")
    assert scratch.bn1.running_mean.abs().max() == 0
    assert scratch.bn1.weight.eq(1).all()


@pytest.mark.parametrize("init", ["warm", "scratch"])
def test_save_load_round_trip(init: str, tmp_path: Path) -> None:
    model = seeded_model("resnet20").eval()
    half = slim(model, 0.5, example_inputs=X[:1], init=init)
    assert half.conv1.out_channels == 8 and half.layer3[0].conv1.out_channels == 32
    path = slimkit.save(half, tmp_path / "half.safetensors")
    loaded = slimkit.load(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), half(X), rtol=0, atol=0)
    assert slimkit.count_macs(loaded, X[:1]) < 0.35 * slimkit.count_macs(model, X[:1])


def test_round_to_and_data_driven_importance() -> None:
    splits = random_splits(train=64, val=8, test=8)
    model = seeded_model("seed-cnn")
    narrow = slim(model, 0.3, example_inputs=X[:1], data=splits, importance="taylor", round_to=4)
    widths = _widths(narrow)
    assert all(widths[n] % 4 == 0 for n in ("conv1", "conv2", "fc1"))
    assert widths["conv1"] == 4 and widths["conv2"] == 8  # ceil(0.3 · n), rounded to 4


def test_full_width_keeps_the_architecture() -> None:
    model = seeded_model("seed-cnn")
    same = slim(model, 1.0, example_inputs=X[:1])
    assert _widths(same) == _widths(model)
    with torch.no_grad():
        torch.testing.assert_close(same(X), model.eval()(X))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0.0}, r"width must be in \(0, 1\]"),
        ({"width": 1.5}, r"width must be in \(0, 1\]"),
        ({"init": "hot"}, "init must be one of"),
        ({"importance": "weird"}, "importance must be one of"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slim(seeded_model("seed-cnn"), example_inputs=X[:1], **kwargs)
