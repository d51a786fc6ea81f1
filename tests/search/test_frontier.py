"""The bisection that proposes the next fraction of MACs for the latency and MACs goals."""

from __future__ import annotations

import pytest

from slimkit.measure import Budget
from slimkit.search import CompressConfig, TrialRecord
from slimkit.search._polish import polish_candidates
from slimkit.search._record import Structure
from slimkit.search._study import (
    FRONTIER_RESOLUTION,
    SIZE_START_SPARSITY,
    frontier_macs_keep,
    frontier_point,
    initial_params,
)

CFG = CompressConfig(max_drop=0.5, goal="latency", min_macs_keep=0.1)


def test_a_plan_within_budget_sends_the_next_trial_half_way_deeper() -> None:
    assert frontier_macs_keep([(0.8, 0.3)], CFG) == pytest.approx(0.45)


def test_a_plan_over_budget_sends_the_next_trial_half_way_back() -> None:
    assert frontier_macs_keep([(0.8, 0.9)], CFG) == pytest.approx(0.9)


def test_the_bracket_is_the_deepest_pass_and_the_shallowest_fail_below_it() -> None:
    trials = [(0.8, 0.3), (0.45, 1.7), (0.62, 0.4), (0.3, 4.0), (0.95, 0.6)]
    # 0.95 failed (noise) but lies above the deepest pass: it does not bound the frontier.
    assert frontier_macs_keep(trials, CFG) == pytest.approx((0.62 + 0.45) / 2)


def test_no_bisection_below_a_failed_cut_at_the_top_of_the_range() -> None:
    capped = CompressConfig(max_drop=0.5, goal="latency", min_macs_keep=0.1, max_macs_keep=0.5)
    assert frontier_macs_keep([(0.5, 0.9)], capped) is None  # the frontier is above the range
    assert frontier_macs_keep([(0.5, 0.3)], capped) == pytest.approx(0.3)


def test_a_narrow_bracket_or_a_taken_midpoint_hands_over_to_the_sampler() -> None:
    narrow = [(0.50, 0.4), (0.50 - FRONTIER_RESOLUTION / 2, 0.7)]
    assert frontier_macs_keep(narrow, CFG) is None
    running = [(0.8, 0.3), (0.45, None)]  # another worker already runs the midpoint
    assert frontier_macs_keep(running, CFG) is None


def test_a_run_where_everything_passes_walks_down_to_the_floor() -> None:
    trials = [(0.8, 0.1)]
    for _ in range(6):
        keep = frontier_macs_keep(trials, CFG)
        if keep is None:
            break
        trials.append((keep, 0.1))
    assert min(k for k, _ in trials) < CFG.min_macs_keep + 2 * FRONTIER_RESOLUTION


def test_the_size_goal_starts_with_the_plans_cut_plus_sparsity_and_bisects_it() -> None:
    size = CompressConfig(max_drop=0.5, goal="size", max_sparsity=0.95)
    assert size.keep_param == "params_keep"  # the size goal's plan cuts weights, not MACs
    assert initial_params(size, 0.7) == {"params_keep": 0.7, "sparsity": SIZE_START_SPARSITY}
    assert initial_params(CFG, 0.7) == {"macs_keep": 0.7}
    capped = CompressConfig(max_drop=0.5, goal="size", max_sparsity=0.5, max_macs_keep=0.6)
    assert initial_params(capped, 0.7) == {"params_keep": 0.6, "sparsity": 0.5}
    by_macs = CompressConfig(max_drop=0.5, goal="size", structure_cost="macs")
    assert initial_params(by_macs, 1.0) == {"macs_keep": 1.0, "sparsity": SIZE_START_SPARSITY}
    # kept weights = 1 - sparsity: 80% sparse within budget, 95% is the floor
    low = 1 - size.max_sparsity
    budget = Budget(max_drop=0.5)
    assert frontier_point([(0.2, 0.3)], budget, low, 1.0) == pytest.approx((0.2 + low) / 2)
    assert frontier_point([(0.2, 0.3), (0.125, 0.9)], budget, low, 1.0) == pytest.approx(0.1625)


def _record(number: int, drop: float, macs: int, pruned: bool = True) -> TrialRecord:
    ratios = {"conv1": 0.5} if pruned else {}
    structure = Structure(ratios=ratios, macs_fraction=1.0, params_fraction=1.0, widths={})
    return TrialRecord(
        number=number,
        knobs={"macs_keep": 0.5},
        structured=structure,
        sparsity=0.0,
        float_val_accuracy=90.0 - drop,
        params_count=macs,
        nonzero_params=macs,
        macs=macs,
        precision="fp32",
        artifact=f"t{number}",
        bytes=macs,
        val_accuracy=90.0 - drop,
        drop=drop,
        latency_ms_b1_raw=1.0,
        latency_ms_b1=1.0,
        latency_ms_b64_raw=macs / 100,
        latency_ms_b64=macs / 100,
    )


def test_polish_takes_the_best_plan_within_budget_then_the_nearest_misses_below_it() -> None:
    cfg = CompressConfig(max_drop=0.5, goal="macs", polish_trials=3)
    records = [
        _record(0, 0.1, 800),
        _record(1, 0.4, 500),  # best within budget
        _record(2, 1.6, 200),  # misses by more than the budget: not worth it
        _record(3, 0.9, 350),
        _record(4, 0.7, 420),
        _record(5, 0.6, 900),  # misses, and is no better on the goal
        _record(6, 0.0, 1000, pruned=False),
    ]
    picked = [r.number for r in polish_candidates(records, cfg)]
    assert picked == [1, 4, 3]
    fewer = CompressConfig(max_drop=0.5, goal="macs", polish_trials=1)
    assert [r.number for r in polish_candidates(records, fewer)] == [1]
    # Nothing within budget: the near misses alone.
    assert [r.number for r in polish_candidates(records[2:5], cfg)] == [4, 3]
