"""Group importance: one score per prunable unit, reduced over every member of a group.

A unit (a channel, a convolution group, an attention head) lives in several tensors at once: a
convolution's output filter, the following norm's scale, the next layers' input slices. Each
criterion scores every tensor slice of the unit and sums over the group, so coupled layers
vote together. Low scores are pruned first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._base import Batch, model_device, require_calibration

if TYPE_CHECKING:
    from ..graph import DependencyGraph, Group

GroupScores = list[torch.Tensor]  # per group of the graph: one score per unit


@runtime_checkable
class GroupImportance(Protocol):
    """Scores the units of every group of a dependency graph: one 1-D tensor per group.

    Any object with these members is a group criterion: pass it as
    ``StructuredConfig(importance=obj)``, or register a factory under a name in
    :data:`slimkit.importance.GROUP` to use the name (configs, recipes, the CLI).
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_data(self) -> bool: ...

    def __call__(
        self, graph: DependencyGraph, model: nn.Module, calib: Iterable[Batch] | None = None
    ) -> GroupScores: ...


def _scatter(values: torch.Tensor, unit_index: np.ndarray, units: int) -> torch.Tensor:
    """Sum per-index ``values`` into their units (index -1 belongs to no unit of the group)."""
    index = torch.from_numpy(unit_index)
    mask = index >= 0
    out = torch.zeros(units, dtype=torch.float64)
    return out.index_add_(0, index[mask], values.double().cpu()[mask])


def _per_index(
    tensor: torch.Tensor, dim: int, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Reduce ``fn(tensor)`` over every dimension but ``dim``."""
    moved = fn(tensor.detach()).movedim(dim, 0)
    return moved.reshape(moved.shape[0], -1).sum(1)


def _tensor(model: nn.Module, module: str, name: str) -> torch.Tensor | None:
    value = getattr(model.get_submodule(module), name, None)
    return value if isinstance(value, torch.Tensor) else None


def _reduce_params(
    graph: DependencyGraph,
    model: nn.Module,
    fn: Callable[[torch.Tensor], torch.Tensor],
    keep: Callable[[nn.Module, str], bool] = lambda module, name: True,
) -> GroupScores:
    """Σ over members (parameters only, not running statistics) of Σ fn(slice)."""
    scores = []
    for group in graph.groups:
        total = torch.zeros(len(group.units), dtype=torch.float64)
        for member in group.members:
            module = model.get_submodule(member.module)
            tensor = _tensor(model, member.module, member.tensor)
            if (
                tensor is None
                or member.tensor not in module._parameters
                or not keep(module, member.tensor)
            ):
                continue
            key = (member.module, member.tensor, member.dim)
            total += _scatter(
                _per_index(tensor, member.dim, fn), graph.unit_index(group, key), len(group.units)
            )
        scores.append(total)
    return scores


@dataclass(frozen=True)
class MagnitudeGroupImportance:
    """‖w‖ₚ of every parameter slice of a unit, over the whole group (p = 1 or 2)."""

    p: int = 2
    needs_data: bool = False

    @property
    def name(self) -> str:
        return f"l{self.p}"

    def __call__(
        self, graph: DependencyGraph, model: nn.Module, calib: Iterable[Batch] | None = None
    ) -> GroupScores:
        scores = _reduce_params(graph, model, lambda t: t.abs().pow(self.p))
        return [s.pow(1.0 / self.p) for s in scores]


_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class BNScaleImportance:
    """|γ| of the normalisation layers in the group (network slimming, Liu et al. 2017).

    Groups without a norm layer fall back to L1 magnitude, so every group gets a score.
    """

    name: str = "bn-scale"
    needs_data: bool = False

    def __call__(
        self, graph: DependencyGraph, model: nn.Module, calib: Iterable[Batch] | None = None
    ) -> GroupScores:
        scales = _reduce_params(
            graph, model, torch.abs, lambda m, name: isinstance(m, _NORMS) and name == "weight"
        )
        fallback = MagnitudeGroupImportance(p=1)(graph, model)
        return [s if s.abs().sum() > 0 else f for s, f in zip(scales, fallback, strict=True)]


@dataclass(frozen=True)
class TaylorGroupImportance:
    """|Σ w·∂L/∂w| over a unit's parameters: the first-order loss change of removing it."""

    name: str = "taylor"
    needs_data: bool = True

    def __call__(
        self, graph: DependencyGraph, model: nn.Module, calib: Iterable[Batch] | None = None
    ) -> GroupScores:
        calib = require_calibration(self.name, calib)
        device = model_device(model)
        was_training = model.training
        model.eval()
        model.zero_grad(set_to_none=True)
        try:
            for x, y in calib:
                torch.autograd.backward(F.cross_entropy(model(x.to(device)), y.to(device)))
            scores = []
            for group in graph.groups:
                total = torch.zeros(len(group.units), dtype=torch.float64)
                for member in group.members:
                    tensor = _tensor(model, member.module, member.tensor)
                    if tensor is None or tensor.grad is None:
                        continue
                    per = _per_index(tensor * tensor.grad, member.dim, lambda t: t)
                    key = (member.module, member.tensor, member.dim)
                    total += _scatter(per, graph.unit_index(group, key), len(group.units))
                scores.append(total.abs())
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        return scores


def _consumer_input_dim(module: nn.Module, tensor: str, dim: int) -> int | None:
    """The input dimension a layer reads the member's channels from, or None."""
    if tensor != "weight":
        return None
    if isinstance(module, nn.Linear) and dim == 1:
        return -1
    transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
    if isinstance(module, nn.modules.conv._ConvNd) and dim == (0 if transposed else 1):
        return 1
    return None


@dataclass(frozen=True)
class ActivationGroupImportance:
    """Statistics of the activations that carry a unit, read at the layers consuming it.

    ``statistic="mean"`` scores by mean |activation|; ``statistic="apoz"`` by 1 − the average
    percentage of zeros (Hu et al. 2016), so units that are mostly zero go first. Groups no
    layer consumes fall back to L2 magnitude.
    """

    statistic: str = "mean"
    needs_data: bool = True

    @property
    def name(self) -> str:
        return "activation" if self.statistic == "mean" else "apoz"

    def __call__(
        self, graph: DependencyGraph, model: nn.Module, calib: Iterable[Batch] | None = None
    ) -> GroupScores:
        calib = require_calibration(self.name, calib)
        consumers = self._consumers(graph, model)
        sums = self._collect(model, consumers, calib)
        fallback = MagnitudeGroupImportance(p=2)(graph, model)
        scores = []
        for group, default in zip(graph.groups, fallback, strict=True):
            total = torch.zeros(len(group.units), dtype=torch.float64)
            for member in group.members:
                key = (member.module, member.tensor, member.dim)
                if key in sums:
                    total += _scatter(sums[key], graph.unit_index(group, key), len(group.units))
            scores.append(total if total.abs().sum() > 0 else default)
        return scores

    def _consumers(
        self, graph: DependencyGraph, model: nn.Module
    ) -> dict[tuple[str, str, int], int]:
        found = {}
        for group in graph.groups:
            for m in group.members:
                dim = _consumer_input_dim(model.get_submodule(m.module), m.tensor, m.dim)
                if dim is not None:
                    found[(m.module, m.tensor, m.dim)] = dim
        return found

    def _statistic(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        moved = x.detach().movedim(dim, 0).reshape(x.shape[dim], -1)
        if self.statistic == "apoz":
            return 1.0 - (moved == 0).double().mean(1)
        return moved.abs().double().mean(1)

    @torch.no_grad()
    def _collect(
        self, model: nn.Module, consumers: dict[tuple[str, str, int], int], calib: Iterable[Batch]
    ) -> dict[tuple[str, str, int], torch.Tensor]:
        sums: dict[tuple[str, str, int], torch.Tensor] = {}

        def hook_for(key: tuple[str, str, int], dim: int) -> Callable[..., None]:
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                stat = self._statistic(inputs[0], dim).cpu()
                sums[key] = sums[key] + stat if key in sums else stat

            return hook

        handles = [
            model.get_submodule(key[0]).register_forward_pre_hook(hook_for(key, dim))
            for key, dim in consumers.items()
        ]
        device = model_device(model)
        was_training = model.training
        model.eval()
        try:
            for x, _ in calib:
                model(x.to(device))
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)
        return sums


@dataclass(frozen=True)
class RandomGroupImportance:
    """Uniform random unit scores: the control every criterion should beat."""

    seed: int = 0
    name: str = "random"
    needs_data: bool = False

    def __call__(
        self, graph: DependencyGraph, model: nn.Module, calib: Iterable[Batch] | None = None
    ) -> GroupScores:
        generator = torch.Generator().manual_seed(self.seed)
        return [
            torch.rand(len(g.units), generator=generator, dtype=torch.float64) for g in graph.groups
        ]


def unit_scores(graph: DependencyGraph, scores: GroupScores) -> dict[int, float]:
    """Scores keyed by unit label, stable while the graph's groups are regrouped."""
    table: dict[int, float] = {}
    for group, values in zip(graph.groups, scores, strict=True):
        table.update(zip(group.units.tolist(), values.tolist(), strict=True))
    return table


def group_of(graph: DependencyGraph, module: str) -> list[Group]:
    """Groups whose members include ``module`` (for inspection)."""
    return [g for g in graph.groups if module in g.modules]
