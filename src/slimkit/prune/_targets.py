"""Which layers a pruning method touches, and the masks that keep pruned weights at zero."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch
from torch import nn

from ..importance._base import weight_of

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def prunable_layers(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Module]:
    """Conv and Linear layers of ``model`` by module name, minus the excluded ones.

    Raises:
        ValueError: if an exclusion matches no layer (likely a typo) or nothing is left.
    """
    exclude = tuple(exclude)
    candidates = {
        name: module for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)
    }
    unknown = [p for p in exclude if not any(_matches(n, [p]) for n in candidates)]
    if unknown:
        raise ValueError(
            f"exclude patterns {unknown} match no Conv/Linear layer; layers are: "
            f"{', '.join(candidates)}"
        )
    targets = {n: m for n, m in candidates.items() if not _matches(n, exclude)}
    if not targets:
        raise ValueError("every prunable layer is excluded: nothing left to prune")
    return targets


class Masks:
    """Binary masks of the target layers' weights; ``apply`` re-zeros pruned weights."""

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks = masks

    @classmethod
    def from_zeros(cls, targets: dict[str, nn.Module]) -> Masks:
        return cls({name: weight_of(m).detach() != 0 for name, m in targets.items()})

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        for name, mask in self.masks.items():
            weight_of(modules[name]).mul_(mask)


def sparsity_of(targets: dict[str, nn.Module]) -> float:
    """Fraction of zeros among the target layers' weights."""
    total = sum(weight_of(m).numel() for m in targets.values())
    zeros = sum(int((weight_of(m) == 0).sum()) for m in targets.values())
    return zeros / max(total, 1)
