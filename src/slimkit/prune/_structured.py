"""Structured pruning: remove whole channels, conv groups and attention heads.

The model is traced into a :class:`~slimkit.graph.DependencyGraph`; each group of coupled
channels is scored by a group criterion; the lowest units are removed from every layer they
touch; the result is re-traced to verify every op's shape against the plan (a divergence blocks
the channels at that op and the plan is redone). The user's model is never modified until a
verified pruned copy exists.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import torch
from torch import nn

from .._attrs import PRUNE_REPORT_ATTR as REPORT_ATTR
from .._attrs import STRUCTURE_ATTR
from .._checks import check_int, check_number
from .._config import ConfigBase
from .._device import resolve_device
from ..data import Splits, make_loader
from ..errors import PruningTargetError
from ..graph import DependencyGraph, Structure, removable_blocks, remove_blocks
from ..importance import GROUP, GroupImportance, check_importance, group_criterion, unit_scores
from ..importance._base import Batch
from ..measure import count_macs, fixed_threads, interleaved_latency
from ..train import TrainConfig
from ..train import train as run_training
from ..train._loop import LossFn
from ._config import AGP, Global, OneShot, PerLayer
from ._select import Candidate, prune_verified
from ._target import Metric, blocked_summary, search_target

MACS_TOLERANCE = 0.05  # channel counts are integers: MACs move in steps of a few percent


@dataclass(frozen=True, kw_only=True)
class StructuredConfig(ConfigBase):
    """Remove channels, conv groups and attention heads, making the model physically smaller.

    Exactly one of ``ratio``, ``target_macs`` and ``target_latency`` is set.

    Attributes:
        ratio: fraction of each group's units removed, in [0, 1) (with :class:`Global`, the
            fraction of all units, distributed by normalised importance).
        target_macs: fraction of the MACs to keep, in (0, 1]; the ratio is searched until
            the MACs are within 5% of the target.
        target_latency: fraction of the latency measured on this machine to keep, in (0, 1];
            pruning iterates prune → measure until within ``latency_tolerance`` of it.
        importance: a name in :data:`slimkit.importance.GROUP` (``l1``, ``l2``, ``bn-scale``,
            ``taylor``, ``activation``, ``apoz``, ``random``, and those registered later) or
            a :class:`~slimkit.importance.GroupImportance` object, like Torch-Pruning's
            ``importance=``; an object is recorded by class name in :meth:`to_dict`, which
            :meth:`from_dict` refuses to rebuild.
        scope: :class:`PerLayer` (the same ratio in every group, with overrides by module
            name) or :class:`Global`.
        round_to: keep channel counts multiples of this (e.g. 8 for SIMD).
        ignore: module names or patterns whose output channels are kept. Layers whose outputs
            reach the model output (the classifier) are always kept.
        schedule: :class:`OneShot` or :class:`AGP` (steps with fine-tuning between them).
        max_ratio: the largest fraction of a group's units that may be removed.
        calib_batches: batches read by data-driven criteria.
        latency_tolerance: relative distance to the latency target that is accepted.
        latency_threads: CPU threads for latency measurements (None: the current setting).
        remove_blocks: residual blocks replaced by the identity (depth pruning), by module
            path, after the channels are pruned; ``slimkit.graph.removable_blocks`` lists the
            candidates. The ``target_*`` goals count the model before this removal.
    """

    TAG = ("method", "structured")

    ratio: float | None = None
    target_macs: float | None = None
    target_latency: float | None = None
    importance: str | GroupImportance = "l2"
    scope: Global | PerLayer = field(default_factory=PerLayer)
    round_to: int = 1
    ignore: tuple[str, ...] = ()
    schedule: OneShot | AGP = field(default_factory=OneShot)
    max_ratio: float = 0.9
    calib_batches: int = 4
    latency_tolerance: float = 0.1
    latency_threads: int | None = None
    remove_blocks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        goals = [self.ratio, self.target_macs, self.target_latency]
        if sum(g is not None for g in goals) != 1:
            raise ValueError(
                "StructuredConfig needs exactly one of ratio=, target_macs= or target_latency="
            )
        for name in ("ratio", "target_macs", "target_latency", "max_ratio", "latency_tolerance"):
            if getattr(self, name) is not None:
                check_number(f"StructuredConfig.{name}", getattr(self, name))
        check_int("StructuredConfig.calib_batches", self.calib_batches, minimum=1)
        if self.latency_threads is not None:
            check_int("StructuredConfig.latency_threads", self.latency_threads, minimum=1)
        if self.ratio is not None and not 0.0 <= self.ratio < 1.0:
            raise ValueError(
                f"StructuredConfig.ratio must be in [0, 1) (0.5 = half the channels), got {self.ratio}"
            )
        for name in ("target_macs", "target_latency"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(
                    f"StructuredConfig.{name} must be in (0, 1] (0.5 = half of the original), "
                    f"got {value}"
                )
        self._check_options()

    def _check_options(self) -> None:
        check_importance("StructuredConfig", self.importance, GROUP, GroupImportance)
        if not isinstance(self.scope, Global | PerLayer):
            raise ValueError("StructuredConfig.scope must be Global() or PerLayer(...)")
        if not isinstance(self.schedule, OneShot | AGP):
            raise ValueError("StructuredConfig.schedule must be OneShot() or AGP(steps=...)")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise ValueError(
                f"StructuredConfig.round_to must be an integer >= 1, got {self.round_to}"
            )
        for name in ("ignore", "remove_blocks"):
            if isinstance(getattr(self, name), str):
                raise ValueError(f"StructuredConfig.{name} must be a tuple of names, not a string")
        if not 0.0 < self.max_ratio < 1.0:
            raise ValueError(f"StructuredConfig.max_ratio must be in (0, 1), got {self.max_ratio}")
        if not 0.0 < self.latency_tolerance < 1.0:
            raise ValueError(
                f"StructuredConfig.latency_tolerance must be in (0, 1), got {self.latency_tolerance}"
            )

    @property
    def goal(self) -> tuple[str, float]:
        """(``ratio`` | ``macs`` | ``latency``, value)."""
        if self.ratio is not None:
            return "ratio", self.ratio
        if self.target_macs is not None:
            return "macs", self.target_macs
        assert self.target_latency is not None
        return "latency", self.target_latency


# -- choosing units ------------------------------------------------------------------------------


def _check_blocks(model: nn.Module, example: Any, names: tuple[str, ...]) -> None:
    """Fail before any pruning when ``names`` are not removable residual blocks of ``model``."""
    if not names:
        return
    allowed = removable_blocks(model, example)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(
            f"StructuredConfig.remove_blocks names {unknown}, which are not removable residual "
            f"blocks of this model; removable: {allowed or 'none'}"
        )


# -- goals: ratio, MACs, latency -----------------------------------------------------------------


def _metric(
    kind: str, example: Any, cfg: StructuredConfig, reference: nn.Module | None = None
) -> Metric:
    x = example if isinstance(example, torch.Tensor) else None
    if kind == "macs":
        if x is None:
            raise ValueError("target_macs needs a single tensor as example_inputs")
        return lambda m: float(count_macs(m, x))
    if kind == "latency":
        if x is None:
            raise ValueError("target_latency needs a single tensor as example_inputs")
        if reference is None:
            raise ValueError("a latency metric needs the reference model")
        return lambda m: _latency_ratio(m, reference, x, cfg.latency_threads)
    return lambda m: 0.0


def _latency_ratio(
    model: nn.Module, reference: nn.Module, x: torch.Tensor, threads: int | None
) -> float:
    """Latency of ``model`` as a fraction of ``reference``'s, the two timed interleaved.

    A baseline timed once at the start drifts from candidates timed minutes later (seed-cnn at
    batch 64: a candidate the search put at 0.474 of the baseline re-measured at 0.442);
    interleaving gives both the same conditions.
    """
    with fixed_threads(threads):
        ref_ms, ms = interleaved_latency([reference.eval(), model.eval()], x, rounds=21)
    return ms / ref_ms


# -- the handler ---------------------------------------------------------------------------------


def _calibration(
    cfg: StructuredConfig, data: Splits | None, calib_data: Iterable[Batch] | None
) -> list[Batch] | None:
    if calib_data is not None:
        return list(islice(iter(calib_data), cfg.calib_batches))
    if data is None:
        return None
    loader = make_loader(data.train, batch_size=64, shuffle=True, seed=1234)
    return list(islice(iter(loader), cfg.calib_batches))


def _example_inputs(
    model: nn.Module, given: Any, calib: list[Batch] | None, data: Splits | None
) -> Any:
    if given is not None:
        return given
    if calib:
        return calib[0][0][:1]
    if data is not None:
        return data.train[0][0].unsqueeze(0)
    arch = getattr(model, "slimkit_arch", None)
    if arch is not None:
        kw = arch.get("kwargs", {})
        size = kw.get("image_size", 28)
        return torch.randn(1, kw.get("in_channels", 1), size, size)
    raise ValueError(
        "structured pruning traces the model: pass example_inputs=torch.randn(1, C, H, W) "
        "(or data=/calib_data=)"
    )


def _to(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, dict):
        return {k: _to(v, device) for k, v in inputs.items()}
    if isinstance(inputs, list | tuple):
        return type(inputs)(_to(v, device) for v in inputs)
    return inputs


def _step_goals(cfg: StructuredConfig) -> list[float]:
    """The goal of each step: cumulative ratios, or fractions of the original metric to keep."""
    kind, value = cfg.goal
    removed = value if kind == "ratio" else 1.0 - value
    ramp = cfg.schedule.sparsities(removed) if isinstance(cfg.schedule, AGP) else [removed]
    return ramp if kind == "ratio" else [1.0 - r for r in ramp]


@dataclass
class _Run:
    cfg: StructuredConfig
    example: Any
    calib: list[Batch] | None
    metric: Metric
    baseline: float
    report: dict[str, Any]


def _prune_step(run: _Run, model: nn.Module, goal: float, previous: float) -> Candidate:
    cfg = run.cfg
    graph = DependencyGraph.build(model, run.example, ignore=cfg.ignore)
    if not any(g.prunable for g in graph.groups):
        raise PruningTargetError(
            f"nothing can be pruned: all {len(graph.groups)} channel groups are blocked "
            f"({blocked_summary(graph)}); ignore fewer layers",
            report=graph.summary(),
        )
    criterion = group_criterion(cfg.importance)
    scores = unit_scores(graph, criterion(graph, model, run.calib))
    kind, _ = cfg.goal
    if kind == "ratio":
        relative = 1.0 - (1.0 - goal) / (1.0 - previous) if previous < 1 else 0.0
        candidate = prune_verified(graph, model, scores, cfg, relative)
    else:
        tolerance = cfg.latency_tolerance if kind == "latency" else MACS_TOLERANCE
        candidate = search_target(
            graph, model, scores, cfg, goal, run.baseline, run.metric, tolerance
        )
    _note(run.report, graph, candidate)
    return candidate


def _note(report: dict[str, Any], graph: DependencyGraph, candidate: Candidate) -> None:
    report["steps"].append(
        {
            "groups": len(graph.groups),
            "units_removed": len(candidate.removed),
            "fraction": candidate.fraction if candidate.fraction != 1.0 else None,
        }
    )
    report["left_unpruned"] = [
        {
            "group": g.index,
            "layers": list(g.sources) or g.modules[:4],
            "units": g.blocked_units,
            "reasons": list(g.reasons),
        }
        for g in graph.groups
        if g.blocked_units
    ] + [{"note": n} for n in candidate.notes]
    report["unsupported_ops"] = {k: list(v) for k, v in graph.unsupported.items()}
    report["divergences_repaired"] = list(graph.divergences)


def _split_epochs(total: int, steps: int) -> list[int]:
    return [total // steps + (1 if i < total % steps else 0) for i in range(steps)]


def prune_structured(
    model: nn.Module,
    cfg: StructuredConfig,
    *,
    data: Splits | None = None,
    train: TrainConfig | None = None,
    device: str | torch.device = "cpu",
    inplace: bool = False,
    progress: bool = True,
    example_inputs: Any = None,
    calib_data: Iterable[Batch] | None = None,
    loss_fn: LossFn | None = None,
) -> nn.Module:
    """Structured pruning; the handler behind ``slimkit.prune(model, StructuredConfig(...))``.

    The returned model is an ordinary, smaller ``nn.Module``. It carries
    ``slimkit_prune_report`` (what was pruned, what was left and why) and ``slimkit_structure``
    (the shapes :func:`slimkit.save` stores so that :func:`slimkit.load` rebuilds it).
    ``train`` is the fine-tuning after pruning (its epochs spread over the steps of an
    :class:`AGP` schedule), ``loss_fn`` its loss (cross-entropy by default).

    Raises:
        PruningTargetError: if nothing can be pruned or the target cannot be reached.
        UnsupportedOpError: if the model cannot be traced.
    """
    device = resolve_device(device)
    criterion = group_criterion(cfg.importance)
    calib = _calibration(cfg, data, calib_data)
    if criterion.needs_data and calib is None:
        raise ValueError(f"importance {criterion.name!r} needs data= or calib_data= batches")
    if train is not None and train.epochs and data is None:
        raise ValueError("fine-tuning needs data=Splits(...)")
    work = copy.deepcopy(model).to(device)
    example = _to(_example_inputs(model, example_inputs, calib, data), device)
    _check_blocks(work, example, cfg.remove_blocks)
    kind, _ = cfg.goal
    # Latency is measured as a ratio against the original, interleaved: its baseline is 1.
    metric = _metric(
        kind, example, cfg, reference=copy.deepcopy(work) if kind == "latency" else None
    )
    baseline = metric(work) if kind == "macs" else 1.0
    run = _Run(cfg, example, calib, metric, baseline, {"steps": []})
    structure = Structure(**getattr(model, STRUCTURE_ATTR, {}))
    goals = _step_goals(cfg)
    epochs = _split_epochs(train.epochs if train else 0, len(goals))
    previous = 0.0
    for index, (goal, step_epochs) in enumerate(zip(goals, epochs, strict=True)):
        candidate = _prune_step(run, work, goal, previous)
        work, previous = candidate.model, goal
        structure = structure.merge(candidate.structure)
        if train is not None and step_epochs and data is not None:
            step_cfg = TrainConfig(**{**train.to_dict(), "epochs": step_epochs})
            run_training(
                work,
                data,
                step_cfg,
                device=device,
                loss_fn=loss_fn,
                progress=progress,
                desc=f"fine-tune {index + 1}/{len(goals)}",
            )
    if cfg.remove_blocks:
        remove_blocks(work, cfg.remove_blocks)
        structure = structure.without(list(cfg.remove_blocks))
        run.report["removed_blocks"] = list(cfg.remove_blocks)
    work.eval()
    run.report["config"] = cfg.to_dict()
    setattr(work, STRUCTURE_ATTR, structure.to_dict())
    setattr(work, REPORT_ATTR, run.report)
    if inplace:
        model.__dict__.update(work.__dict__)  # the user's object becomes the verified copy
        return model
    return work
