from __future__ import annotations

from pathlib import Path

import pytest

from slimkit import SlimkitError
from slimkit.report import write_report
from slimkit.report._report import _pareto


def test_pareto_front_keeps_only_unbeaten_points() -> None:
    points = [(10.0, 90.0), (5.0, 89.0), (7.0, 88.0), (20.0, 91.0), (5.0, 85.0), (12.0, 90.0)]
    # (7, 88) is beaten by (5, 89); (12, 90) by (10, 90); (5, 85) by (5, 89).
    assert _pareto(points) == [(5.0, 89.0), (10.0, 90.0), (20.0, 91.0)]
    assert _pareto([]) == []


def test_unfinished_run_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"stages": {}}')
    with pytest.raises(SlimkitError, match="--resume"):
        write_report(tmp_path)


def test_width_chart_shows_removed_blocks_and_the_kept_widths() -> None:
    from slimkit.report._report import _kept_widths

    curves = [
        {"key": "layer1.0.conv1", "channels": 16},
        {"key": "layer1.1.conv1", "channels": 16},
        {"key": "layer2.0.conv1", "channels": 32},
    ]
    ratios = {"layer1.1.conv1": 0.5, "layer2.0.conv1": 0.33}
    plan = {"ratios": ratios, "removed_blocks": ["layer1.1"], "widths": {"layer2.0.conv1": 24}}
    assert _kept_widths(curves, plan) == [16, 0, 24]  # removed block: 0; rounding: 24, not 21
    older = {"ratios": ratios, "removed_blocks": []}  # a summary from before widths were kept
    assert _kept_widths(curves, older) == [16, 8, 21]
