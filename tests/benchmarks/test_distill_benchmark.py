"""benchmarks/distill.py: the verdict a pair's table prints, and the arms it accepts."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_script: Callable[[str], ModuleType]) -> ModuleType:
    return load_script("benchmarks/distill.py")


def test_a_gain_must_clear_both_bars(bench) -> None:
    ce = [92.0, 92.1, 92.2]
    # +0.5 with a pooled std of 0.1: yes.
    assert bench.verdict([92.5, 92.6, 92.7], ce) == ("0.10", "yes")
    # +0.28 clears the spread but not 0.3 points.
    assert bench.verdict([92.38, 92.28, 92.18], ce)[1] == "no"
    # +0.4 inside a spread of 0.6: no.
    assert bench.verdict([91.9, 92.5, 93.1], ce) == ("0.43", "no")
    # One seed cannot say.
    assert bench.verdict([93.0], ce) == ("–", "–")


def test_arms_parse_to_distill_configs(bench) -> None:
    assert bench.parse_arm("ce") is None
    assert bench.parse_arm("kd:T=2:alpha=0.5") == {
        "logit_loss": "kd",
        "temperature": 2.0,
        "alpha": 0.5,
    }
    assert bench.parse_arm("kd:at=5")["hint_layers"] == "auto"
    with pytest.raises(SystemExit, match="unknown key 'tau'"):
        bench.parse_arm("kd:tau=2")


def test_pruned_pairs_are_titled_by_the_fraction_they_keep(bench) -> None:
    assert "pruned to 15% of its MACs" in bench.pair_title("self", {"target_macs": 0.15})
    assert bench.pair_title("resnet8", {}) == bench.PAIRS["resnet8"].title
