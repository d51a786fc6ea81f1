"""The accuracy budget's one rule, at its boundary."""

from __future__ import annotations

import pytest

from slimkit.measure import Budget


def test_holds_is_drop_plus_margin_standard_errors_within_max_drop() -> None:
    budget = Budget(max_drop=0.5, margin_se=1.0)
    assert budget.holds(0.5)  # exactly at the budget: within
    assert not budget.holds(0.5000001)
    assert budget.holds(-3.0)  # better than the original
    assert budget.holds(0.25, se=0.25)  # 0.25 + 1 * 0.25 = 0.5: within
    assert not budget.holds(0.25, se=0.2500001)
    assert not budget.holds(0.3, se=0.25)
    two = Budget(max_drop=1.0, margin_se=2.0)
    assert two.holds(0.5, se=0.25) and not two.holds(0.5, se=0.26)
    face_value = Budget(max_drop=0.5, margin_se=0.0)  # --margin-se 0: the drop alone
    assert face_value.holds(0.5, se=10.0) and not face_value.holds(0.51, se=0.0)


def test_a_drop_without_an_error_bar_is_judged_on_the_drop_alone() -> None:
    # Search trials carry one measurement each: se defaults to 0 whatever the margin.
    budget = Budget(max_drop=0.5, margin_se=3.0)
    assert budget.holds(0.5) and not budget.holds(0.51)
    assert budget.excess(0.5) == 0.0
    assert budget.excess(0.75) == pytest.approx(0.25)
    assert budget.excess(0.25) == pytest.approx(-0.25)


def test_the_looser_pre_filter_allows_twice_the_budget() -> None:
    budget = Budget(max_drop=0.5)
    assert budget.allowance == 1.0 == Budget.RECOVERABLE * budget.max_drop
    assert budget.recoverable(1.0) and not budget.recoverable(1.0000001)
    assert Budget(max_drop=0.0).allowance == 0.0  # a zero budget allows nothing to recover


def test_the_budget_in_words_names_its_margin() -> None:
    assert Budget(max_drop=0.5).statement(" points") == "0.5 points (plus 1 standard errors)"
    assert Budget(max_drop=2.0, margin_se=0.0).statement() == "2.0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_drop": float("nan")}, "Budget.max_drop must be a finite number, got nan"),
        ({"max_drop": -0.1}, "Budget.max_drop must be >= 0.0, got -0.1"),
        ({"max_drop": 0.5, "margin_se": -1.0}, "Budget.margin_se must be >= 0.0"),
    ],
)
def test_a_budget_that_could_not_judge_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Budget(**kwargs)
