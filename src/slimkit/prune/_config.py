"""Configuration value objects for pruning."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .._checks import check_int, check_number
from .._config import ConfigBase
from ..importance import ELEMENTWISE, ElementwiseImportance, check_importance


@dataclass(frozen=True)
class Global(ConfigBase):
    """One threshold across all target layers: layers with less important weights lose more."""

    TAG = ("type", "global")


@dataclass(frozen=True)
class PerLayer(ConfigBase):
    """The same sparsity in every target layer, with optional per-layer overrides.

    Args:
        overrides: module name → sparsity for that layer.
    """

    TAG = ("type", "per-layer")

    overrides: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.overrides.items():
            check_number(f"PerLayer.overrides[{name!r}]", value)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"PerLayer.overrides[{name!r}] must be in [0, 1), got {value}")


@dataclass(frozen=True)
class OneShot(ConfigBase):
    """Prune to the target at once, then fine-tune."""

    TAG = ("type", "one-shot")


@dataclass(frozen=True)
class AGP(ConfigBase):
    """Automated gradual pruning (Zhu & Gupta 2017): sparsity follows a cubic ramp.

    s_t = s_f + (s_i - s_f) · (1 - t/n)³ for t = 1..n, with fine-tuning between steps.

    Args:
        steps: number of pruning steps n.
        initial_sparsity: s_i, the sparsity of the ramp's start.
    """

    TAG = ("type", "agp")

    steps: int = 4
    initial_sparsity: float = 0.0

    def __post_init__(self) -> None:
        check_int("AGP.steps", self.steps, minimum=1)
        check_number("AGP.initial_sparsity", self.initial_sparsity)
        if not 0.0 <= self.initial_sparsity < 1.0:
            raise ValueError(f"AGP.initial_sparsity must be in [0, 1), got {self.initial_sparsity}")

    def sparsities(self, final: float) -> list[float]:
        """The sparsity after each step; the last one is ``final``."""
        n, s_i = self.steps, min(self.initial_sparsity, final)
        return [final + (s_i - final) * (1 - t / n) ** 3 for t in range(1, n + 1)]


@dataclass(frozen=True, kw_only=True)
class UnstructuredConfig(ConfigBase):
    """Zero out individual weights of Conv/Linear layers by importance.

    Attributes:
        sparsity: fraction of the target weights set to zero, in [0, 1).
        importance: a name in :data:`slimkit.importance.ELEMENTWISE` (``magnitude``,
            ``taylor``, ``activation``, ``random``) or a criterion object; an object is
            recorded by class name in :meth:`to_dict`, which :meth:`from_dict` cannot rebuild.
        scope: :class:`Global` (one threshold) or :class:`PerLayer`.
        exclude: module names (or fnmatch patterns like ``"fc2"``, ``"layer1.*"``) left dense.
        schedule: :class:`OneShot` or :class:`AGP`.
        calib_batches: batches of training data read by data-driven criteria.
    """

    TAG = ("method", "unstructured")

    sparsity: float
    importance: str | ElementwiseImportance = "magnitude"
    scope: Global | PerLayer = field(default_factory=Global)
    exclude: tuple[str, ...] = ()
    schedule: OneShot | AGP = field(default_factory=OneShot)
    calib_batches: int = 16

    def __post_init__(self) -> None:
        check_number("UnstructuredConfig.sparsity", self.sparsity)
        check_int("UnstructuredConfig.calib_batches", self.calib_batches, minimum=1)
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(
                f"UnstructuredConfig.sparsity must be in [0, 1) (0.9 = 90% zeros), got {self.sparsity}"
            )
        check_importance("UnstructuredConfig", self.importance, ELEMENTWISE, ElementwiseImportance)
        if not isinstance(self.scope, Global | PerLayer):
            raise ValueError("UnstructuredConfig.scope must be Global() or PerLayer(...)")
        if not isinstance(self.schedule, OneShot | AGP):
            raise ValueError("UnstructuredConfig.schedule must be OneShot() or AGP(...)")
        if isinstance(self.exclude, str):
            raise ValueError("UnstructuredConfig.exclude must be a tuple of names, not a string")
