"""Unit importance for sentence encoders: how much removing a head or an FFN neuron moves the
embeddings.

Both criteria read a unit where its output is consumed: the input columns of the linear layer
after it (``attention.output.dense`` for a head, ``output.dense`` for an FFN neuron). Scaling a
unit's output by a mask ``m`` scales exactly those columns, so ``∂e/∂m_u`` is
``Σ_{i ∈ u} Σ_j W[j, i] · ∂e/∂W[j, i]``.

``fisher`` is the curvature of the embedding-distillation loss ``½‖e_student − e_teacher‖²``
with the original model as the teacher. Before pruning the student is the teacher: the loss
and its gradient are zero, so the change from removing unit ``u`` (``m_u: 1 → 0``) is the
second-order term ``½ E_x ‖∂e(x)/∂m_u‖²`` (the Gauss-Newton curvature, exact at a zero
residual). One backward pass per batch estimates it without the full Jacobian: for a random
Gaussian direction ``r`` per sentence, ``E_r (r · ∂e/∂m_u)² = ‖∂e/∂m_u‖²`` (Hutchinson).

``activation`` scores ``E|a_i| · ‖W[:, i]‖₂`` over real (unpadded) tokens: how large the
unit's contribution to the next layer's output is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from .._registry import Registry
from ..importance import GroupScores, MagnitudeGroupImportance

if TYPE_CHECKING:
    from ..graph import DependencyGraph
    from ..models import SentenceEncoder

TextBatch = dict[str, torch.Tensor]


class TextImportance(Protocol):
    """Scores every unit of every group of a sentence encoder's dependency graph."""

    @property
    def name(self) -> str: ...

    def __call__(
        self, graph: DependencyGraph, encoder: SentenceEncoder, batches: Sequence[TextBatch]
    ) -> GroupScores: ...


@dataclass(frozen=True)
class _Consumer:
    group: int
    module: str
    units: np.ndarray  # per input column: its unit in the group, or -1


def consumers(graph: DependencyGraph, model: nn.Module) -> list[_Consumer]:
    """The linear layers reading each group's units, with the unit of each input column."""
    found = []
    for group in graph.groups:
        if not group.prunable:
            continue
        for member in group.members:
            module = model.get_submodule(member.module)
            if isinstance(module, nn.Linear) and member.tensor == "weight" and member.dim == 1:
                key = (member.module, member.tensor, member.dim)
                found.append(_Consumer(group.index, member.module, graph.unit_index(group, key)))
    return found


def _scatter(values: torch.Tensor, units: np.ndarray, count: int) -> torch.Tensor:
    index = torch.from_numpy(units)
    keep = index >= 0
    out = torch.zeros(count, dtype=torch.float64)
    return out.index_add_(0, index[keep], values.detach().double().cpu()[keep])


def _weight(model: nn.Module, name: str) -> torch.Tensor:
    module = model.get_submodule(name)
    assert isinstance(module, nn.Linear)
    return module.weight


def _empty(graph: DependencyGraph) -> GroupScores:
    return [torch.zeros(len(g.units), dtype=torch.float64) for g in graph.groups]


@dataclass(frozen=True)
class FisherImportance:
    """Curvature of the embedding-distillation loss (see the module docstring).

    Args:
        seed: seed of the random projection directions.
    """

    seed: int = 0

    @property
    def name(self) -> str:
        return "fisher"

    def __call__(
        self, graph: DependencyGraph, encoder: SentenceEncoder, batches: Sequence[TextBatch]
    ) -> GroupScores:
        backbone = encoder.backbone
        readers = consumers(graph, backbone)
        weights = {c.module: _weight(backbone, c.module) for c in readers}
        scores = _empty(graph)
        generator = torch.Generator().manual_seed(self.seed)
        flags = {p: p.requires_grad for p in encoder.parameters()}
        was_training = encoder.training
        encoder.eval()
        try:
            for p in encoder.parameters():
                p.requires_grad_(False)
            for weight in weights.values():
                weight.requires_grad_(True)
            for batch in batches:
                for weight in weights.values():
                    weight.grad = None
                embeddings = encoder(**batch)
                directions = torch.randn(embeddings.shape, generator=generator)
                (embeddings * directions.to(embeddings.device)).sum().backward()
                per_group = _empty(graph)
                for c in readers:
                    w = weights[c.module]
                    assert w.grad is not None
                    column = (w * w.grad).sum(0)
                    per_group[c.group] += _scatter(column, c.units, len(per_group[c.group]))
                for total, batch_score in zip(scores, per_group, strict=True):
                    total += batch_score.pow(2)
        finally:
            for p, flag in flags.items():
                p.requires_grad_(flag)
                p.grad = None
            encoder.train(was_training)
        return [s / max(len(batches), 1) for s in scores]


@dataclass(frozen=True)
class ActivationImportance:
    """Mean |activation| of a unit over real tokens × the norm of the weights reading it."""

    @property
    def name(self) -> str:
        return "activation"

    @torch.no_grad()
    def __call__(
        self, graph: DependencyGraph, encoder: SentenceEncoder, batches: Sequence[TextBatch]
    ) -> GroupScores:
        backbone = encoder.backbone
        readers = consumers(graph, backbone)
        sums: dict[str, torch.Tensor] = {}
        mask: list[torch.Tensor] = []

        def hook_for(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                keep = mask[0].reshape(-1).bool().to(inputs[0].device)
                rows = inputs[0].reshape(-1, inputs[0].shape[-1])[keep]
                stat = rows.abs().double().mean(0).cpu()
                sums[name] = sums[name] + stat if name in sums else stat

            return hook

        handles = [
            backbone.get_submodule(name).register_forward_pre_hook(hook_for(name))
            for name in {c.module for c in readers}
        ]
        was_training = encoder.training
        encoder.eval()
        try:
            for batch in batches:
                mask[:] = [batch["attention_mask"]]
                encoder(**batch)
        finally:
            for handle in handles:
                handle.remove()
            encoder.train(was_training)
        scores = _empty(graph)
        for c in readers:
            norms = _weight(backbone, c.module).detach().norm(dim=0).double().cpu()
            scores[c.group] += _scatter(sums[c.module] * norms, c.units, len(scores[c.group]))
        return scores


@dataclass(frozen=True)
class MagnitudeImportance:
    """‖w‖₂ over every parameter slice of a unit (data-free; the baseline to beat)."""

    @property
    def name(self) -> str:
        return "l2"

    def __call__(
        self, graph: DependencyGraph, encoder: SentenceEncoder, batches: Sequence[TextBatch]
    ) -> GroupScores:
        return MagnitudeGroupImportance(p=2)(graph, encoder.backbone)


#: Unit criteria for sentence encoders, by name.
TEXT_IMPORTANCE: Registry[Callable[[], TextImportance]] = Registry("text importance criterion")
TEXT_IMPORTANCE.register("fisher", FisherImportance)
TEXT_IMPORTANCE.register("activation", ActivationImportance)
TEXT_IMPORTANCE.register("l2", MagnitudeImportance)
