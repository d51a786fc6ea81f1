"""Which layers' outputs a feature loss compares, and capturing them during forward passes."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .._hooks import run_with_hooks
from ._config import AUTO, HintLayers


@dataclass(frozen=True)
class FeatureInfo:
    """One module's output on the example batch: its shape (no batch dim) and call count."""

    shape: tuple[int, ...]
    calls: int


@torch.no_grad()
def module_outputs(model: nn.Module, example: torch.Tensor) -> dict[str, FeatureInfo]:
    """Run ``model`` once on ``example`` and record every submodule's tensor output.

    The dict is ordered by when each module *finished* (a container after its children), so
    the last entry at a given resolution is the most processed feature map at that size.
    """
    seen: dict[str, FeatureInfo] = {}

    def hook_for(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            calls = seen.pop(name).calls + 1 if name in seen else 1
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ()
            seen[name] = FeatureInfo(shape, calls)

        return hook

    run_with_hooks(model, example, ((m, hook_for(n)) for n, m in model.named_modules() if n))
    return seen


def _last_per_resolution(outputs: dict[str, FeatureInfo]) -> dict[tuple[int, int], str]:
    """Spatial size → the last module (run once) whose output is a feature map of that size.

    1x1 maps are skipped: their attention map is constant and they carry no spatial hint.
    """
    last: dict[tuple[int, int], str] = {}
    for name, info in outputs.items():
        if info.calls == 1 and len(info.shape) == 3 and info.shape[1:] != (1, 1):
            size = (info.shape[1], info.shape[2])
            last.pop(size, None)  # re-insert: the dict keeps the order of the final choice
            last[size] = name
    return last


def auto_pairs(
    student: dict[str, FeatureInfo], teacher: dict[str, FeatureInfo]
) -> list[tuple[str, str]]:
    """Pair the last feature map of each spatial size the student and the teacher share.

    Raises:
        ValueError: if they share no spatial size.
    """
    s_last, t_last = _last_per_resolution(student), _last_per_resolution(teacher)
    pairs = [(name, t_last[size]) for size, name in s_last.items() if size in t_last]
    if not pairs:
        raise ValueError(
            "hint_layers='auto' found no feature maps of the same spatial size in both models "
            f"(student sizes {sorted(s_last)}, teacher sizes {sorted(t_last)}); name the "
            "(student, teacher) layer pairs instead"
        )
    return pairs


def _check_name(name: str, outputs: dict[str, FeatureInfo], model: nn.Module, role: str) -> None:
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"the {role} has no module {name!r}{hint}; its modules are: {', '.join(names)}"
        )
    info = outputs.get(name)
    if info is None or not info.shape:
        raise ValueError(
            f"{role} module {name!r} does not return a tensor on the example batch; "
            "choose a layer whose output is a feature map or a vector"
        )
    if info.calls != 1:
        raise ValueError(
            f"{role} module {name!r} runs {info.calls} times per forward pass, so its output is "
            "ambiguous; choose a layer that runs once"
        )


def resolve_pairs(
    hint_layers: HintLayers,
    student: nn.Module,
    teacher: nn.Module,
    example: torch.Tensor,
) -> tuple[list[tuple[str, str]], list[tuple[int, ...]], list[tuple[int, ...]]]:
    """The (student, teacher) layer pairs and their output shapes (without the batch dim).

    Raises:
        ValueError: for a name that does not exist (the message lists the model's modules), a
            module that runs more than once or returns no tensor, or no common sizes for auto.
    """
    if not hint_layers:
        return [], [], []
    s_out, t_out = module_outputs(student, example), module_outputs(teacher, example)
    if hint_layers == AUTO:
        pairs = auto_pairs(s_out, t_out)
    else:
        pairs = [tuple(p) for p in hint_layers]  # type: ignore[misc]
        for s_name, t_name in pairs:
            _check_name(s_name, s_out, student, "student")
            _check_name(t_name, t_out, teacher, "teacher")
    return (
        [(s, t) for s, t in pairs],
        [s_out[s].shape for s, _ in pairs],
        [t_out[t].shape for _, t in pairs],
    )


class FeatureTap:
    """Keeps the latest output of each named module of ``model`` while it is attached.

    Example:
        >>> with FeatureTap(model, ["layer1", "layer2"]) as tap:
        ...     model(x)
        ...     first, second = tap.get()
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self.names = list(names)
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        for name in self.names:
            module = model.get_submodule(name)
            self._handles.append(module.register_forward_hook(self._hook_for(name)))

    def _hook_for(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            self.features[name] = output

        return hook

    def get(self) -> list[torch.Tensor]:
        """The captured features in the order of ``names``; cleared for the next pass."""
        features = [self.features[name] for name in self.names]
        self.features.clear()
        return features

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
