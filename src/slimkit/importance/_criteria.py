"""Element-wise criteria: magnitude, Taylor (gradient), activation (Wanda-style) and random."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._base import Batch, Scores, model_device, require_calibration, weight_of


@dataclass(frozen=True)
class MagnitudeImportance:
    """|w|: the classic sparsity-threshold criterion."""

    name: str = "magnitude"
    needs_data: bool = False

    def __call__(
        self,
        model: nn.Module,
        targets: Mapping[str, nn.Module],
        calib: Iterable[Batch] | None = None,
    ) -> Scores:
        return {name: weight_of(module).detach().abs() for name, module in targets.items()}


@dataclass(frozen=True)
class TaylorImportance:
    """|w · ∂L/∂w| summed over calibration batches (first-order Taylor estimate of the loss change).

    The model runs in eval mode so BatchNorm statistics are not disturbed.
    """

    name: str = "taylor"
    needs_data: bool = True

    def __call__(
        self,
        model: nn.Module,
        targets: Mapping[str, nn.Module],
        calib: Iterable[Batch] | None = None,
    ) -> Scores:
        calib = require_calibration(self.name, calib)
        device = model_device(model)
        scores = {
            name: torch.zeros_like(weight_of(m), requires_grad=False) for name, m in targets.items()
        }
        was_training = model.training
        model.eval()
        try:
            for x, y in calib:
                model.zero_grad(set_to_none=True)
                torch.autograd.backward(F.cross_entropy(model(x.to(device)), y.to(device)))
                for name, module in targets.items():
                    weight = weight_of(module)
                    if weight.grad is not None:
                        scores[name] += (weight.detach() * weight.grad).abs()
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        return scores


def _input_channel_norms(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Sum of squares of each input channel / feature over every other dimension."""
    if isinstance(module, nn.Linear):
        return x.detach().reshape(-1, x.shape[-1]).pow(2).sum(0)
    return x.detach().transpose(0, 1).reshape(x.shape[1], -1).pow(2).sum(1)


def _expand_to_weight(norms: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Broadcast per-input-channel norms onto the weight's shape (grouped convs included)."""
    weight = weight_of(module)
    if isinstance(module, nn.Linear):
        return norms.unsqueeze(0).expand_as(weight)
    groups = getattr(module, "groups", 1)
    out_channels = weight.shape[0]
    per_group = norms.reshape(groups, -1).repeat_interleave(out_channels // groups, dim=0)
    return per_group.reshape(*per_group.shape, *([1] * (weight.dim() - 2))).expand_as(weight)


@dataclass(frozen=True)
class ActivationImportance:
    """|w| · ‖x_j‖₂ (Wanda): weight magnitude scaled by the norm of the input channel it reads."""

    name: str = "activation"
    needs_data: bool = True

    def __call__(
        self,
        model: nn.Module,
        targets: Mapping[str, nn.Module],
        calib: Iterable[Batch] | None = None,
    ) -> Scores:
        calib = require_calibration(self.name, calib)
        device = model_device(model)
        sums: dict[str, torch.Tensor] = {}

        def hook_for(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                norms = _input_channel_norms(module, inputs[0])
                sums[name] = sums[name] + norms if name in sums else norms

            return hook

        handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in targets.items()]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for x, _ in calib:
                    model(x.to(device))
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)
        missing = [name for name in targets if name not in sums]
        if missing:
            raise ValueError(f"layers {missing[:3]} never ran on the calibration data")
        return {
            name: weight_of(module).detach().abs() * _expand_to_weight(sums[name].sqrt(), module)
            for name, module in targets.items()
        }


@dataclass(frozen=True)
class RandomImportance:
    """Uniform random scores: the control every criterion should beat."""

    seed: int = 0
    name: str = "random"
    needs_data: bool = False

    def __call__(
        self,
        model: nn.Module,
        targets: Mapping[str, nn.Module],
        calib: Iterable[Batch] | None = None,
    ) -> Scores:
        generator = torch.Generator().manual_seed(self.seed)
        return {
            name: torch.rand(weight_of(m).shape, generator=generator).to(weight_of(m).device)
            for name, m in targets.items()
        }
