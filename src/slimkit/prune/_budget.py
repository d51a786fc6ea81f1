"""Tune the sparsity threshold to an accuracy budget: the loop tutorials do by hand.

Each trial's verdict is :class:`slimkit.measure.Budget`'s, the rule compress judges by; the
``bisect`` strategy halves its interval with :func:`slimkit._bisect.bisect`, as compress's
plan and the ``target_macs`` search do.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._bisect import bisect
from .._checks import check_int, check_number
from ..data import Splits
from ..errors import AccuracyBudgetError
from ..measure import Budget, evaluate_accuracy
from ..train import TrainConfig
from ..train._loop import LossFn
from ._config import UnstructuredConfig
from ._unstructured import prune_unstructured

STRATEGIES = ("iterative", "bisect")
TrialRunner = Callable[[int, nn.Module, float], tuple["Trial", nn.Module]]


@dataclass(frozen=True)
class Trial:
    """One candidate: the sparsity tried, its fine-tuned validation accuracy, and the verdict."""

    index: int
    sparsity: float
    val_accuracy: float
    drop: float
    within_budget: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BudgetSearch:
    """The outcome of :func:`search_sparsity`."""

    baseline_val_accuracy: float
    max_drop: float
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    model: nn.Module | None = None

    @property
    def budget(self) -> Budget:
        """The accuracy budget every trial is judged by: at most ``max_drop`` points below
        the baseline (one measurement a trial, so no standard-error margin applies)."""
        return Budget(max_drop=self.max_drop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_val_accuracy": self.baseline_val_accuracy,
            "max_drop": self.max_drop,
            "trials": [t.to_dict() for t in self.trials],
            "chosen": self.best.to_dict() if self.best else None,
        }


def check_budget(
    max_drop: float, *, max_trials: int = 6, max_sparsity: float = 0.99, strategy: str = "iterative"
) -> None:
    """Raise ``ValueError`` for a budget :func:`search_sparsity` cannot search: checked before
    any data or model is read, so a NaN budget never runs a trial."""
    check_number("max_drop", max_drop, minimum=0.0)
    check_int("max_trials", max_trials, minimum=1)
    check_number("max_sparsity", max_sparsity)
    if not 0 < max_sparsity < 1:
        raise ValueError(f"max_sparsity must be in (0, 1), got {max_sparsity}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def search_sparsity(
    model: nn.Module,
    data: Splits,
    template: UnstructuredConfig,
    *,
    max_drop: float,
    train: TrainConfig | None,
    max_trials: int = 6,
    max_sparsity: float = 0.99,
    device: str | torch.device = "cpu",
    on_trial: Callable[[Trial], None] | None = None,
    progress: bool = True,
    strategy: str = "iterative",
    loss_fn: LossFn | None = None,
) -> BudgetSearch:
    """Find the largest sparsity whose fine-tuned validation accuracy stays within ``max_drop``.

    Each trial prunes a model to a candidate sparsity (with ``template``'s criterion, scope and
    schedule), fine-tunes it, and measures validation top-1; :meth:`Budget.holds
    <slimkit.measure.Budget.holds>` judges its drop. Only validation data is read; the caller
    measures the test set once at the end. Two strategies:

    - ``iterative`` (default; Han et al. 2015): prune → fine-tune → validate → prune more,
      each trial starting from the last model within budget. The density (1 - sparsity)
      halves while trials pass; after a failure the step shrinks (its square root), the next
      trial starts again from the last good model, and no trial goes as far as a sparsity
      that already failed (it splits the gap instead). Fine-tuning accumulates along the
      accepted path, so high sparsities recover better than from one-shot pruning.
    - ``bisect``: independent trials from the dense model, bisecting the density on a log
      scale between 1 and ``1 - max_sparsity``; assumes accuracy falls as sparsity rises.

    Args:
        model: the trained dense model (not modified).
        data: training data for fine-tuning and calibration, validation data for decisions.
        template: pruning settings; its ``sparsity`` is ignored.
        max_drop: budget in points of validation top-1 below the baseline.
        train: the fine-tuning after each candidate's pruning.
        max_trials: how many candidates at most.
        max_sparsity: the largest sparsity considered.
        device: where to fine-tune.
        on_trial: called with each finished trial (live progress).
        progress: show fine-tuning progress bars.
        strategy: ``iterative`` or ``bisect`` (see above).
        loss_fn: the fine-tuning loss (cross-entropy by default).

    Raises:
        ValueError: for a negative or non-finite budget or a bad trial count.
        AccuracyBudgetError: if no candidate met the budget (``err.best`` holds the closest).
    """
    check_budget(max_drop, max_trials=max_trials, max_sparsity=max_sparsity, strategy=strategy)
    baseline = evaluate_accuracy(model, data.val, device=device)
    search = BudgetSearch(baseline_val_accuracy=baseline, max_drop=max_drop)

    def run_trial(index: int, start: nn.Module, sparsity: float) -> tuple[Trial, nn.Module]:
        cfg = dataclasses.replace(template, sparsity=sparsity)
        candidate = prune_unstructured(
            start,
            cfg,
            data=data,
            train=train,
            device=device,
            progress=progress,
            loss_fn=loss_fn,
        )
        accuracy = evaluate_accuracy(candidate, data.val, device=device)
        drop = baseline - accuracy
        trial = Trial(index, sparsity, accuracy, drop, search.budget.holds(drop))
        search.trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        if trial.within_budget:
            search.best, search.model = trial, candidate
        return trial, candidate

    if strategy == "bisect":
        _bisect(model, run_trial, max_trials, max_sparsity)
    else:
        _iterative(model, run_trial, max_trials, max_sparsity)
    if search.best is None:
        closest = min(search.trials, key=lambda t: t.drop)
        raise AccuracyBudgetError(
            f"no sparsity met the budget of {max_drop} points in {max_trials} trials (closest: "
            f"{closest.sparsity:.1%} sparsity, {closest.drop:.2f} points below the baseline); "
            "allow a larger --max-drop, more --finetune-epochs or more --max-trials",
            best=search,
        )
    return search


def _log_density(sparsity: float) -> float:
    return math.log(1.0 - sparsity)


def _sparsity(log_density: float) -> float:
    return round(1.0 - math.exp(log_density), 4)


def _bisect(model: nn.Module, run_trial: TrialRunner, max_trials: int, max_sparsity: float) -> None:
    index = itertools.count(1)

    def probe(log_density: float) -> bool:
        trial, _ = run_trial(next(index), model, _sparsity(log_density))
        return trial.within_budget

    # Log density 0 is the dense model, within budget; points are rounded sparsities.
    bisect(
        0.0,
        _log_density(max_sparsity),
        probe,
        steps=max_trials,
        snap=lambda mid: _log_density(_sparsity(mid)),
    )


def _iterative(
    model: nn.Module, run_trial: TrialRunner, max_trials: int, max_sparsity: float
) -> None:
    current, good = model, 0.0  # the last model within budget and its log density
    floor, failed = _log_density(max_sparsity), None  # failed: the sparsest known failure
    step = math.log(0.5)
    for index in range(1, max_trials + 1):
        target = good + step
        if failed is not None and target <= failed + 1e-3:
            target = (good + failed) / 2  # never retry a sparsity known to fail: split the gap
        target = max(target, floor)
        if _sparsity(target) <= _sparsity(good):  # the gap has closed: nothing left to try
            break
        trial, candidate = run_trial(index, current, _sparsity(target))
        if trial.within_budget:
            current, good = candidate, _log_density(trial.sparsity)
        else:
            failed, step = _log_density(trial.sparsity), step / 2
