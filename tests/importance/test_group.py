"""Group importance criteria: one score per unit, reduced over every member of a group."""

from __future__ import annotations

import pytest
import torch

import slimkit
from slimkit.graph import DependencyGraph
from slimkit.importance import GROUP, BNScaleImportance, MagnitudeGroupImportance
from slimkit.testing import random_splits

X = torch.randn(1, 1, 28, 28)


def _graph(name: str = "resnet20") -> tuple[torch.nn.Module, DependencyGraph]:
    model = slimkit.create_model(name)
    return model, DependencyGraph.build(model, X)


@pytest.mark.parametrize("name", GROUP.names())
def test_every_criterion_scores_every_unit(name: str) -> None:
    model, graph = _graph()
    calib = [
        (x, y) for x, y in torch.utils.data.DataLoader(random_splits(train=16).train, batch_size=8)
    ]
    scores = GROUP.get(name)()(graph, model, calib)
    assert [len(s) for s in scores] == [len(g.units) for g in graph.groups]
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores)


def test_magnitude_sums_over_all_members_of_a_group() -> None:
    model, graph = _graph("seed-cnn")
    group = next(g for g in graph.groups if "conv1" in g.modules)
    l1 = MagnitudeGroupImportance(p=1)(graph, model)[group.index]
    expected = (
        model.conv1.weight.abs().sum((1, 2, 3))
        + model.conv1.bias.abs()
        + model.conv2.weight.abs().sum((0, 2, 3))
    )
    assert torch.allclose(l1.float(), expected.detach(), rtol=1e-5)


def test_bn_scale_reads_the_norm_scales() -> None:
    model, graph = _graph()
    with torch.no_grad():
        model.bn1.weight.copy_(torch.arange(16.0))
    group = next(g for g in graph.groups if "bn1" in g.modules)
    scores = BNScaleImportance()(graph, model)[group.index]
    # every BN of the stage shares these channels; bn1's scale ramp dominates their sum
    assert int(torch.argmin(scores)) == 0


def test_data_criteria_require_calibration() -> None:
    model, graph = _graph()
    with pytest.raises(ValueError, match="needs calibration data"):
        GROUP.get("taylor")()(graph, model, None)
