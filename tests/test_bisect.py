"""The one bisection: ends moved by the probe's verdict, snapped points, early stops, and the
searches that halve an interval all calling it."""

from __future__ import annotations

import math

import pytest

from slimkit._bisect import bisect


def test_the_probe_moves_the_end_its_verdict_names() -> None:
    probed: list[float] = []

    def at_most_a_third(x: float) -> bool:
        probed.append(x)
        return x <= 1 / 3

    holds_at, fails_at = bisect(0.0, 1.0, at_most_a_third, steps=30)
    assert probed[:3] == [0.5, 0.25, 0.375]
    assert len(probed) == 30
    assert holds_at <= 1 / 3 < fails_at and fails_at - holds_at == pytest.approx(2**-30)


def test_the_ends_may_run_downwards() -> None:
    # The density of a sparse model: 1 (dense) holds, 0.01 fails; log scale, as prune does.
    holds_at, fails_at = bisect(0.0, math.log(0.01), lambda x: x >= math.log(0.3), steps=25)
    assert fails_at < math.log(0.3) <= holds_at
    assert holds_at - fails_at == pytest.approx(-math.log(0.01) / 2**25)


def test_points_are_snapped_before_they_are_probed() -> None:
    probed: list[float] = []

    def probe(x: float) -> bool:
        probed.append(x)
        return x < 0.62

    bisect(0.0, 1.0, probe, steps=4, snap=lambda x: round(x, 1))
    assert probed == [0.5, 0.8, 0.7, 0.6]  # the middles 0.75 and 0.65 rounded up, then 0.6


def test_none_stops_the_search_and_steps_bound_it() -> None:
    probed: list[float] = []

    def close_enough(x: float) -> bool | None:
        probed.append(x)
        return None if abs(x - 0.3) < 0.02 else x < 0.3

    bisect(0.0, 1.0, close_enough, steps=50)
    assert probed == [0.5, 0.25, 0.375, 0.3125]
    assert bisect(0.0, 1.0, lambda x: True, steps=0) == (0.0, 1.0)


def test_every_search_that_halves_an_interval_calls_this_one() -> None:
    from slimkit import _bisect
    from slimkit.prune import _budget, _target
    from slimkit.search import _plan

    assert _budget.bisect is _target.bisect is _plan.bisect is _bisect.bisect
