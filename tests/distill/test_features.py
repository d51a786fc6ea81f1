"""Choosing the layers a feature loss compares: auto pairing by spatial size, named pairs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.distill import FeatureTap, auto_pairs, module_outputs, resolve_pairs
from slimkit.testing import TinyConvNet, seeded_model

X = torch.randn(2, 1, 28, 28)


def test_auto_pairs_the_last_map_of_each_size_in_a_plain_cnn() -> None:
    student, teacher = seeded_model("seed-cnn-slim"), seeded_model("seed-cnn")
    pairs, s_shapes, t_shapes = resolve_pairs("auto", student, teacher, X)
    # seed-cnn's max-pool module runs twice per forward pass, so it is never picked.
    assert pairs == [("conv1", "conv1"), ("conv2", "conv2")]
    assert s_shapes == [(8, 28, 28), (16, 14, 14)]
    assert t_shapes == [(16, 28, 28), (32, 14, 14)]


def test_auto_pairs_whole_stages_of_resnets() -> None:
    s_out = module_outputs(seeded_model("resnet20"), X)
    t_out = module_outputs(seeded_model("resnet56"), X)
    # A stage (container) finishes after its last block: it is the last map of its size.
    assert auto_pairs(s_out, t_out) == [
        ("layer1", "layer1"),
        ("layer2", "layer2"),
        ("layer3", "layer3"),
    ]
    assert s_out["layer3"].shape == (64, 7, 7) and s_out["layer3"].calls == 1


def test_auto_pairs_only_common_sizes() -> None:
    # resnet20 has maps of 28, 14 and 7 pixels; seed-cnn only 28 and 14 (its 7x7 map comes
    # from the shared pool module).
    pairs, _, _ = resolve_pairs("auto", seeded_model("resnet20"), seeded_model("seed-cnn"), X)
    assert pairs == [("layer1", "conv1"), ("layer2", "conv2")]


def test_auto_without_common_sizes_is_an_error() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match="no feature maps of the same spatial size"):
        resolve_pairs("auto", mlp, seeded_model("seed-cnn"), X)


def test_unknown_layer_names_list_the_modules() -> None:
    with pytest.raises(ValueError) as err:
        resolve_pairs(
            (("conv3", "conv1"),), seeded_model("seed-cnn-slim"), seeded_model("seed-cnn"), X
        )
    message = str(err.value)
    assert "the student has no module 'conv3' (did you mean 'conv2'?)" in message
    assert "its modules are: conv1, conv2, pool, fc1, fc2" in message
    with pytest.raises(ValueError, match="the teacher has no module 'nope'"):
        resolve_pairs(
            (("conv1", "nope"),), seeded_model("seed-cnn-slim"), seeded_model("seed-cnn"), X
        )


def test_a_module_that_runs_twice_is_ambiguous() -> None:
    with pytest.raises(ValueError, match="'pool' runs 2 times per forward pass"):
        resolve_pairs(
            (("pool", "conv1"),), seeded_model("seed-cnn-slim"), seeded_model("seed-cnn"), X
        )


def test_named_pairs_of_vectors() -> None:
    pairs, s_shapes, t_shapes = resolve_pairs(
        (("fc1", "fc1"),), seeded_model("seed-cnn-slim"), seeded_model("seed-cnn"), X
    )
    assert pairs == [("fc1", "fc1")] and s_shapes == [(64,)] and t_shapes == [(128,)]


def test_feature_tap_captures_and_releases() -> None:
    model = TinyConvNet()
    tap = FeatureTap(model, ["grouped", "conv"])
    model(torch.randn(3, 1, 8, 8))
    grouped, conv = tap.get()
    assert grouped.shape == (3, 4, 8, 8) and conv.shape == (3, 4, 8, 8)
    assert tap.features == {}
    tap.remove()
    model(torch.randn(3, 1, 8, 8))
    assert tap.features == {}
