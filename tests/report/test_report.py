from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from slimkit import SlimkitError
from slimkit.report import write_report
from slimkit.report._plots import _pareto
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
    from slimkit.report._plots import _kept_widths

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
    from slimkit.report import _plots as _report

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
    numbers = [t.get_text() for t in ax.texts if not t.get_text().startswith("original")]
    assert sorted(numbers) == ["0", "1", "2"]
    # Coloured by the budget's verdict on each trial's drop, as the search judged it.
    within, over = ax.collections[0], ax.collections[1]
    assert within.get_label() == "trials within budget"
    assert within.get_offsets().tolist() == [[1.0, 91.8], [0.8, 91.49]]
    assert over.get_label() == "trials over budget"
    assert over.get_offsets().tolist() == [[0.5, 90.0]]


def _summary(original_ms: float = 4.0) -> dict[str, Any]:
    profile = {"val_accuracy": 92.0, "latency_ms_b64": original_ms}
    return {
        "goal": "latency",
        "baseline": profile,
        "result": {"val_accuracy": 91.8, "latency_ms_b64": 1.0, "backend": "ort", "threads": 1},
        "budget": {"max_drop": 0.5, "margin_se": 1.0, "val_drop": 0.2, "test_drop": 0.3},
        "ratios": {"speedup_b64": 4.0, "smaller": 3.0, "macs": 2.0},
        "plan": {"macs_keep": 0.5, "macs_fraction": 0.5, "ratios": {"conv1": 0.5},
                 "widths": {"conv1": 8}, "sparsity": 0.0, "precision": "int8"},
        "stages": [{"name": "search", "seconds": 3.0}],
    }  # fmt: skip


def _trials_axes(monkeypatch: pytest.MonkeyPatch, original_ms: float) -> Any:
    from slimkit.report import _plots as _report

    figures: list[Any] = []
    monkeypatch.setattr(_report, "_png", lambda fig: figures.append(fig) or "")
    trials = [_trial(0, 91.8, 0.2, 1.0), _trial(1, 91.6, 0.4, 2.0)]
    _report._trials_plot(trials, _summary(original_ms))
    return figures[0].axes[0]


def test_a_far_original_is_an_arrow_at_the_axis_edge_not_a_point_that_sets_the_axis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Eager fp32 at 400 ms against trials of 1-2 ms: as a point it would squeeze them into
    # one corner of the log axis.
    ax = _trials_axes(monkeypatch, original_ms=400.0)
    low, high = ax.get_xlim()
    assert low == pytest.approx(1.0 / 1.25) and high == pytest.approx(2.0 * 1.25)
    assert "original" not in [c.get_label() for c in ax.collections]
    arrows = [t.get_text() for t in ax.texts if t.get_text().startswith("original")]
    assert arrows == ["original: 400 ms →"]
    assert [line.get_ydata()[0] for line in ax.lines if "original" in line.get_label()] == [92.0]


def test_an_original_within_the_trials_range_is_a_star_on_the_chart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ax = _trials_axes(monkeypatch, original_ms=1.5)
    [star] = [c for c in ax.collections if c.get_label() == "original"]
    assert star.get_offsets().tolist() == [[1.5, 92.0]]
    assert not [t for t in ax.texts if t.get_text().startswith("original")]


def _run_dir(path: Path, *, quantization: bool, layer_ms: bool) -> Path:
    from slimkit.search._layout import LAYOUT

    sensitivity: dict[str, Any] = {
        "subset_accuracy": 92.0,
        "curves": [{"key": "conv1", "channels": 16, "ratios": [0.5], "drops": [1.0]}],
    }
    if quantization:
        sensitivity["quantization"] = [
            {"layer": "conv1", "accuracy_drop": 0.1},
            {"layer": "fc", "accuracy_drop": 0.4},
            {"layer": "conv2", "accuracy_drop": -0.05},
        ]
    plan: dict[str, Any] = {"initial_keep": 0.5, "ratios": {"conv1": 0.5}}
    if layer_ms:
        plan.update(layer_ms={"conv1": 0.3, "fc": 0.1}, layer_ms_runtime="onnxruntime")
    stages = {"sensitivity": {"output": sensitivity}, "plan": {"output": plan}}
    path.mkdir()
    (path / "state.json").write_text(json.dumps({"layout": LAYOUT, "stages": stages}))
    (path / "summary.json").write_text(json.dumps(_summary()))
    trials = [_trial(0, 91.8, 0.2, 1.0), _trial(1, 91.0, 1.0, 0.6)]
    (path / "trials.json").write_text(json.dumps([t.to_dict() for t in trials]))
    return path


@pytest.mark.parametrize(
    ("quantization", "layer_ms", "extra"),
    [(False, False, []), (True, False, ["int8 sensitivity per layer"]),
     (True, True, ["int8 sensitivity per layer", "int8 time per layer"])],
)  # fmt: skip
def test_the_html_report_has_real_tables_and_a_plot_for_each_measurement_the_run_has(
    tmp_path: Path, quantization: bool, layer_ms: bool, extra: list[str]
) -> None:
    run = _run_dir(tmp_path / "run", quantization=quantization, layer_ms=layer_ms)
    paths = write_report(run)
    page = Path(paths["html"]).read_text()
    # The outcome, the trials and the stages: three tables, none left as Markdown.
    assert page.count("<table>") == 3
    assert "|---" not in page and "<pre>" not in page
    assert '<td class="right">+1</td>' in page  # trial 1's drop, right-aligned
    assert "<strong>latency</strong>" in page
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    common = ["accuracy vs goal, every trial", "sensitivity curves"]
    tail = ["per-layer width, sparsity and precision", "time per stage"]
    assert alts == common + extra + tail
    markdown = Path(paths["markdown"]).read_text()
    assert "| trial | MACs kept |" in markdown and "<table>" not in markdown


def test_the_int8_sensitivity_chart_ranks_layers_by_drop_and_names_the_runtime_of_the_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from slimkit.report import _plots as _report

    figures: list[Any] = []
    monkeypatch.setattr(_report, "_png", lambda fig: figures.append(fig) or "")
    layers = [
        {"layer": "conv1", "accuracy_drop": 0.1},
        {"layer": "fc", "accuracy_drop": 0.4},
        {"layer": "conv2", "accuracy_drop": -0.05},
    ]
    _report._quantization_plot(layers)
    _report._layer_ms_plot({"conv1": 0.3, "fc": 0.1}, "openvino")
    sens, times = (f.axes[0] for f in figures)
    ranked = [t.get_text() for t in sens.get_yticklabels()]
    assert ranked == ["fc", "conv1", "conv2"]  # worst first, at the top (inverted axis)
    assert sens.yaxis_inverted()
    assert "openvino" in times.get_title() and "0.40 ms in all" in times.get_title()
