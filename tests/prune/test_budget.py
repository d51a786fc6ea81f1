"""search_sparsity with pruning and evaluation replaced by a known accuracy curve: a real run
would fine-tune a model per trial, and the search logic is what these tests are about."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from torch import nn

from slimkit import AccuracyBudgetError, PerLayer, TrainConfig, UnstructuredConfig, search_sparsity
from slimkit.measure import Budget
from slimkit.prune import _budget
from slimkit.prune._budget import Trial
from slimkit.testing import TinyConvNet, random_splits

BASELINE = 90.0
TEMPLATE = UnstructuredConfig(sparsity=0.0, importance="random", scope=PerLayer())
SCHEDULE = TrainConfig(epochs=3)


class Candidate(nn.Module):
    """Stands for a pruned, fine-tuned model: it only remembers its sparsity."""

    def __init__(self, sparsity: float) -> None:
        super().__init__()
        self.sparsity = sparsity


class FakePipeline:
    """Replaces prune_unstructured and evaluate_accuracy inside the search module."""

    def __init__(self, original: nn.Module, drop_at: Callable[[float], float]) -> None:
        self.original = original
        self.drop_at = drop_at
        self.configs: list[UnstructuredConfig] = []
        self.starts: list[nn.Module] = []
        self.candidates: list[Candidate] = []

    def prune(self, model: nn.Module, cfg: UnstructuredConfig, **kwargs: object) -> Candidate:
        assert kwargs["train"] is SCHEDULE
        self.configs.append(cfg)
        self.starts.append(model)
        self.candidates.append(Candidate(cfg.sparsity))
        return self.candidates[-1]

    def accuracy(self, model: nn.Module, dataset: object, **kwargs: object) -> float:
        if model is self.original:
            return BASELINE
        assert isinstance(model, Candidate)
        return BASELINE - self.drop_at(model.sparsity)


@pytest.fixture
def original() -> nn.Module:
    return TinyConvNet()


def _install(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module, drop_at: Callable[[float], float]
) -> FakePipeline:
    fake = FakePipeline(original, drop_at)
    monkeypatch.setattr(_budget, "prune_unstructured", fake.prune)
    monkeypatch.setattr(_budget, "evaluate_accuracy", fake.accuracy)
    return fake


def _search(original: nn.Module, **kwargs: object) -> _budget.BudgetSearch:
    return search_sparsity(
        original, random_splits(), TEMPLATE, train=SCHEDULE, progress=False, **kwargs
    )


def _bisect(original: nn.Module, **kwargs: object) -> _budget.BudgetSearch:
    return _search(original, strategy="bisect", **kwargs)


def test_bisection_picks_the_largest_sparsity_within_budget(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    # The drop is 40 s^2 points: within a 10-point budget up to s = 0.5.
    fake = _install(monkeypatch, original, lambda s: 40 * s * s)
    seen: list[Trial] = []
    search = _bisect(original, max_drop=10.0, max_trials=6, max_sparsity=0.99, on_trial=seen.append)

    # Bisection of the density 1 - s on a log scale between 1 and 0.01, rounded to 4 digits:
    # 1 - 0.01^(1/2) = 0.9 (over), 1 - 0.1^(1/2) = 0.6838 (over), 1 - 0.1^(1/4) = 0.4377 (ok), ...
    sparsities = [t.sparsity for t in search.trials]
    assert sparsities == [0.9, 0.6838, 0.4377, 0.5783, 0.513, 0.4767]
    assert [t.within_budget for t in search.trials] == [False, False, True, False, False, True]
    assert [t.index for t in search.trials] == [1, 2, 3, 4, 5, 6]
    assert seen == search.trials

    assert search.baseline_val_accuracy == BASELINE
    assert search.best is not None
    assert search.best.sparsity == max(t.sparsity for t in search.trials if t.within_budget)
    assert search.best.sparsity == 0.4767
    assert search.best.drop == pytest.approx(40 * 0.4767**2)
    assert isinstance(search.model, Candidate) and search.model.sparsity == 0.4767

    # Each trial pruned the dense model with the template's settings at its own sparsity.
    assert all(start is original for start in fake.starts)
    assert [c.sparsity for c in fake.configs] == sparsities
    assert [(c.importance, c.scope) for c in fake.configs] == [("random", PerLayer())] * 6


def test_bisection_trials_are_monotone(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    _install(monkeypatch, original, lambda s: 100 * s**3)
    search = _bisect(original, max_drop=5.0, max_trials=8, max_sparsity=0.999)
    trials = search.trials
    assert len(trials) == 8
    for k, trial in enumerate(trials):
        assert trial.drop == pytest.approx(100 * trial.sparsity**3)
        assert trial.within_budget == (trial.drop <= 5.0)
        later = [t.sparsity for t in trials[k + 1 :]]
        # within budget: only larger sparsities remain to try; over budget: only smaller ones
        if trial.within_budget:
            assert all(s > trial.sparsity for s in later)
        else:
            assert all(s < trial.sparsity for s in later)
    assert search.best is not None
    assert search.best.sparsity == max(t.sparsity for t in trials if t.within_budget)
    assert (
        100 * search.best.sparsity**3
        <= 5.0
        < 100 * min(t.sparsity for t in trials if not t.within_budget) ** 3
    )


def test_bisection_with_an_impossible_budget_reports_the_closest_trial(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    _install(monkeypatch, original, lambda s: 1.0 + 20 * s)  # always at least 1 point lost
    with pytest.raises(AccuracyBudgetError) as info:
        _bisect(original, max_drop=0.5, max_trials=4, max_sparsity=0.99)
    search = info.value.best
    assert isinstance(search, _budget.BudgetSearch)
    assert len(search.trials) == 4 and not any(t.within_budget for t in search.trials)
    closest = min(search.trials, key=lambda t: t.drop)
    assert closest is search.trials[-1]  # bisection kept lowering the sparsity
    message = str(info.value)
    assert f"closest: {closest.sparsity:.1%} sparsity, {closest.drop:.2f} points" in message
    assert "budget of 0.5 points in 4 trials" in message
    assert "--max-drop" in message


def test_bisection_with_a_zero_budget_accepts_a_lossless_sparsity(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    _install(monkeypatch, original, lambda s: 0.0 if s < 0.95 else 3.0)
    search = _bisect(original, max_drop=0.0, max_trials=1, max_sparsity=0.99)
    assert search.best is not None and search.best.sparsity == 0.9
    assert search.to_dict()["chosen"] == search.best.to_dict()
    assert search.to_dict()["trials"] == [search.best.to_dict()]


def test_iterative_search_halves_the_density_from_the_last_good_model(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    fake = _install(monkeypatch, original, lambda s: 0.0)  # pruning never hurts
    search = _search(original, max_drop=1.0, max_trials=10, max_sparsity=0.9)
    # density 1/2, 1/4, 1/8, then the ceiling 0.1; nothing is left to try after it
    assert [t.sparsity for t in search.trials] == [0.5, 0.75, 0.875, 0.9]
    assert fake.starts == [original, *fake.candidates[:-1]]  # each from the previous one
    assert search.best is search.trials[-1] and search.model is fake.candidates[-1]


def test_iterative_search_shrinks_the_step_after_a_failure(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    fake = _install(monkeypatch, original, lambda s: 40 * s * s)  # within 10 points up to 0.5
    search = _search(original, max_drop=10.0, max_trials=5, max_sparsity=0.99)
    # from density 1/2: x1/2 fails, then x2^-1/2, x2^-1/4, x2^-1/8 (the step's square roots)
    expected = [0.5] + [round(1 - 0.5 * 0.5 ** (1 / 2**k), 4) for k in range(4)]
    assert [t.sparsity for t in search.trials] == expected == [0.5, 0.75, 0.6464, 0.5796, 0.5415]
    assert [t.within_budget for t in search.trials] == [True, False, False, False, False]
    assert fake.starts == [original] + [fake.candidates[0]] * 4  # back to the last good model
    assert search.best is search.trials[0] and search.model is fake.candidates[0]


def test_iterative_search_with_an_impossible_budget(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    _install(monkeypatch, original, lambda s: 5.0 + s)
    with pytest.raises(AccuracyBudgetError) as info:
        _search(original, max_drop=1.0, max_trials=3, max_sparsity=0.99)
    search = info.value.best
    assert [t.sparsity for t in search.trials] == [0.5, 0.2929, 0.1591]
    assert "closest: 15.9% sparsity, 5.16 points below the baseline" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_drop": -1.0}, "max_drop must be >= 0"),
        ({"max_drop": 1.0, "max_trials": 0}, "max_trials must be >= 1"),
        ({"max_drop": 1.0, "max_sparsity": 1.0}, r"max_sparsity must be in \(0, 1\)"),
        ({"max_drop": 1.0, "strategy": "grid"}, "strategy must be one of"),
        # NaN passed `max_drop < 0`, ran every trial, then failed the budget (exit 3)
        ({"max_drop": float("nan")}, "max_drop must be a finite number, got nan"),
        ({"max_drop": float("inf")}, "max_drop must be a finite number, got inf"),
        ({"max_drop": 1.0, "max_trials": 2.5}, "max_trials must be an integer, got 2.5"),
        ({"max_drop": 1.0, "max_sparsity": float("nan")}, "max_sparsity must be a finite"),
    ],
)
def test_bad_search_arguments(original: nn.Module, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _search(original, **kwargs)


def test_iterative_search_never_retries_a_failed_sparsity(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module
) -> None:
    # fails beyond 92%: after 93.75% fails and 91.16% passes, the full step would land on
    # 93.75% again; the search splits the gap instead
    _install(monkeypatch, original, lambda s: 0.0 if s <= 0.92 else 5.0)
    search = _search(original, max_drop=1.0, max_trials=6, max_sparsity=0.99)
    tried = [t.sparsity for t in search.trials]
    assert tried == [0.5, 0.75, 0.875, 0.9375, 0.9116, 0.9257]
    assert len(set(tried)) == len(tried)
    assert search.best is not None and search.best.sparsity == 0.9116


EXPECTED_VERDICTS = {
    # sparsities tried: 0.5, 0.2929, 0.1591, 0.2289, 0.2616, 0.2454
    "iterative": [False, False, True, True, False, True],
    # sparsities tried: 0.9, 0.6838, 0.4377, 0.2501, 0.134, 0.1941
    "bisect": [False, False, False, False, True, True],
}


@pytest.mark.parametrize("strategy", ["iterative", "bisect"])
def test_every_verdict_is_the_budgets_rule_on_the_same_numbers(
    monkeypatch: pytest.MonkeyPatch, original: nn.Module, strategy: str
) -> None:
    """search_sparsity decides nothing itself: each trial asks Budget.holds, the rule
    compress judges by, and its verdict is that answer on the trial's own drop."""
    _install(monkeypatch, original, lambda s: 12 * s)  # within 3 points up to s = 0.25
    asked: list[tuple[Budget, float]] = []
    holds = Budget.holds

    def spy(self: Budget, drop: float, se: float = 0.0) -> bool:
        asked.append((self, drop))
        return holds(self, drop, se)

    monkeypatch.setattr(Budget, "holds", spy)
    search = _search(original, max_drop=3.0, max_trials=6, strategy=strategy)
    assert [drop for _, drop in asked] == [t.drop for t in search.trials]
    assert all(budget == Budget(max_drop=3.0) == search.budget for budget, _ in asked)
    verdicts = [t.within_budget for t in search.trials]
    assert verdicts == [holds(Budget(max_drop=3.0), t.drop) for t in search.trials]
    # both sides of the boundary (s = 0.25) were judged, in the order each strategy tries them
    assert verdicts == EXPECTED_VERDICTS[strategy]
