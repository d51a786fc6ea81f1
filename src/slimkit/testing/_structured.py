"""Fixtures for structured pruning: a model with concatenation, exactness checks, zoo cases."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._attrs import PRUNE_REPORT_ATTR
from ..graph import DependencyGraph, apply_plan

# Smallest input each torchvision family accepts (ViTs get image_size = two patches instead).
_MIN_SIDE = {"inception_v3": 75, "alexnet": 63, "maxvit_t": 224}


class ConcatNet(nn.Module):
    """Two conv branches concatenated (Inception/DenseNet style), a split, a residual add.

    conv(1→6) ┬ conv(6→4) ┐
              └ conv(6→4) ┴ cat(8) → chunk(2) → add → BN → conv(4→5) → pool → Linear
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.left = nn.Conv2d(6, 4, 1)
        self.right = nn.Conv2d(6, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 5, 3, padding=1)
        self.fc = nn.Linear(5 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        both = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], dim=1)
        a, b = both.chunk(2, dim=1)
        x = F.relu(self.head(self.bn(a + b)))
        return self.fc(F.adaptive_avg_pool2d(x, (2, 2)).flatten(1))


@torch.no_grad()
def zero_units_(model: nn.Module, graph: DependencyGraph, removed: Iterable[int]) -> nn.Module:
    """Zero every parameter slice of the ``removed`` units (running variances are left).

    After this, removing the units must not change the model's output: the exactness check of
    structured surgery. ``graph`` must have been built on ``model``.
    """
    plan = graph.plan(removed)
    for (path, name, dim), keep in plan.keep.items():
        if name == "running_var":
            continue
        tensor = getattr(model.get_submodule(path), name)
        mask = torch.ones(tensor.shape[dim], dtype=torch.bool)
        mask[keep] = False
        tensor.index_fill_(dim, torch.nonzero(mask).flatten().to(tensor.device), 0.0)
    return model


def torchvision_case(name: str, *, num_classes: int = 10) -> tuple[nn.Module, torch.Tensor]:
    """A torchvision classifier with random weights and the smallest sensible input (batch 1)."""
    import torchvision

    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    side = _MIN_SIDE.get(name, 32)
    if name.startswith("vit_"):
        patch = int(name.rsplit("_", 1)[1])
        kwargs["image_size"] = side = 2 * patch
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, **kwargs).eval()
        example = torch.randn(1, 3, side, side)
    return model, example


def check_structured(
    model: nn.Module, example: torch.Tensor, *, ratio: float = 0.5
) -> dict[str, Any]:
    """Prune ~``ratio`` of every group; report MACs before/after and whether it is sound.

    Sound means: the pruned model runs, its output shape is unchanged, and its MACs went down.
    """
    from ..measure import count_macs
    from ..prune import StructuredConfig, prune

    start = time.perf_counter()
    result: dict[str, Any] = {"macs_before": count_macs(model, example)}
    try:
        pruned = prune(model, StructuredConfig(ratio=ratio), example_inputs=example, progress=False)
        with torch.no_grad():
            same_shape = pruned(example).shape == model(example).shape
        result["macs_after"] = count_macs(pruned, example)
        report: dict[str, Any] = getattr(pruned, PRUNE_REPORT_ATTR, {})
        result["left_unpruned"] = len(report["left_unpruned"])
        result["unsupported_ops"] = report["unsupported_ops"]
        if not same_shape:
            result["reason"] = "output shape changed"
        elif result["macs_after"] >= result["macs_before"]:
            result["reason"] = "MACs not reduced"
    except Exception as err:  # the sweep records every failure instead of stopping
        result["reason"] = f"{type(err).__name__}: {str(err)[:300]}"
    result["ok"] = "reason" not in result
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def exactness_gap(model: nn.Module, example: torch.Tensor, *, ratio: float = 0.5) -> float:
    """Max |output difference| between zeroing half of each group's units and removing them."""
    from ..prune import StructuredConfig, select_units

    model = copy.deepcopy(model).eval()
    graph = DependencyGraph.build(model, example)
    scores = {int(u): float(i) for g in graph.groups for i, u in enumerate(g.units)}
    removed, _ = select_units(graph, scores, StructuredConfig(ratio=ratio), ratio)
    zero_units_(model, graph, removed)
    pruned = copy.deepcopy(model)
    apply_plan(pruned, graph.plan(removed))
    if graph.verify(pruned, removed) is not None:
        raise AssertionError(f"pruned model diverged from the plan: {graph.divergences}")
    with torch.no_grad():
        return float((model(example) - pruned(example)).abs().max())
