from __future__ import annotations

from pathlib import Path

import pytest

from slimkit import SlimkitError
from slimkit.report import write_report
from slimkit.report._report import _pareto
from slimkit.search import TrialRecord
from slimkit.search._record import Structure


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


def _trial(number: int, val: float, drop: float, ms: float) -> TrialRecord:
    structure = Structure(ratios={}, macs_fraction=1.0, params_fraction=1.0, widths={})
    return TrialRecord(
        number=number, knobs={"macs_keep": 1.0}, structured=structure, sparsity=0.0,
        float_val_accuracy=val, params_count=10, nonzero_params=10, macs=100, precision="fp32",
        artifact="m.safetensors", bytes=1000, val_accuracy=val, drop=drop,
        latency_ms_b1_raw=ms, latency_ms_b1=ms, latency_ms_b64_raw=ms, latency_ms_b64=ms,
    )  # fmt: skip


def test_trials_chart_labels_its_axis_with_the_goal_and_numbers_the_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The legend loop once overwrote the axis label: the x-axis read "trials over budget".
    from slimkit.report import _report

    figures: list[object] = []
    monkeypatch.setattr(_report, "_png", lambda fig: figures.append(fig) or "")
    profile = {"val_accuracy": 92.0, "latency_ms_b64": 4.0}
    summary = {
        "goal": "latency",
        "baseline": profile,
        "result": {"val_accuracy": 91.8, "latency_ms_b64": 1.0},
        "budget": {"max_drop": 0.5, "margin_se": 1.0},
    }
    # Trial 1 measured 0.5 of drop on its own run of the original (the search judged it within
    # budget); against this baseline its score lies a hair under the floor line.
    trials = [_trial(0, 91.8, 0.2, 1.0), _trial(1, 91.49, 0.5, 0.8), _trial(2, 90.0, 2.0, 0.5)]
    _report._trials_plot(trials, summary)
    ax = figures[0].axes[0]  # type: ignore[attr-defined]
    assert ax.get_xlabel() == "latency at batch 64 (ms)"
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "2"]
    # Coloured by the budget's verdict on each trial's drop, as the search judged it.
    within, over = ax.collections[0], ax.collections[1]
    assert within.get_label() == "trials within budget"
    assert within.get_offsets().tolist() == [[1.0, 91.8], [0.8, 91.49]]
    assert over.get_label() == "trials over budget"
    assert over.get_offsets().tolist() == [[0.5, 90.0]]
