from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slimkit.data import DATA_DIR_ENV
from slimkit.testing import (
    ConstantClassifier,
    TinyConvNet,
    fixed_init_,
    random_splits,
    seeded_model,
)

CONFTEST = Path(__file__).parents[1] / "conftest.py"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    state_a, state_b = a.state_dict(), b.state_dict()
    return state_a.keys() == state_b.keys() and all(
        torch.equal(v, state_b[k]) for k, v in state_a.items()
    )


def test_tiny_conv_net_is_deterministic() -> None:
    torch.manual_seed(1)
    a = TinyConvNet(seed=4)
    torch.manual_seed(2)  # the global RNG plays no part
    assert _same_weights(a, TinyConvNet(seed=4))
    assert not _same_weights(a, TinyConvNet(seed=5))
    assert all(
        bool((p != 0).all()) and float(p.detach().abs().max()) <= 0.5 for p in a.parameters()
    )
    assert sum(p.numel() for p in a.parameters()) == 286
    assert a(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_fixed_init_is_independent_of_layer_defaults() -> None:
    a = fixed_init_(torch.nn.Linear(3, 2), seed=0)
    b = fixed_init_(torch.nn.Linear(3, 2), seed=0)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_seeded_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a = seeded_model("seed-cnn-slim", seed=7)
    assert torch.equal(torch.rand(3), expected)
    assert _same_weights(a, seeded_model("seed-cnn-slim", seed=7))
    assert a.slimkit_arch == {"name": "seed-cnn-slim", "kwargs": {}}


def test_random_splits_are_deterministic() -> None:
    a, b = random_splits(train=10, num_classes=3), random_splits(train=10, num_classes=3)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert (len(a.train), len(a.val), len(a.test)) == (10, 32, 32)
    assert int(a.test.tensors[1].max()) < 3


def test_constant_classifier() -> None:
    assert ConstantClassifier(2, num_classes=4)(torch.randn(5, 7)).argmax(1).tolist() == [2] * 5


def test_missing_dataset_fails_the_fixture_instead_of_skipping(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "no-data-here"))
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile("def test_needs_data(fmnist):\n    assert fmnist\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no-data-here*", "*run `make test`*"])
