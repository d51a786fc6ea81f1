"""The recovery stage: KD for the trials only when it measured better than cross-entropy."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from slimkit import Splits
from slimkit.measure import Metric
from slimkit.search import CompressConfig, _recovery, compress
from slimkit.train import TrainConfig

FAST = {
    "trials": 1,
    "recover_train": TrainConfig(epochs=1),
    "sensitivity_images": 256,
    "quantize": False,
}


class _Ctx:
    """The parts of a trial Context the probe reads."""

    def __init__(self, metric: Metric) -> None:
        self.cfg = CompressConfig(recover_train=TrainConfig(epochs=1))
        self.metric = metric
        self.splits = type("S", (), {"val": None})()
        self.recovery = "kd"


@pytest.mark.parametrize(
    ("scores", "lower_is_better", "chosen"),
    [
        ({"ce": 90.0, "kd": 90.4}, False, "kd"),
        ({"ce": 90.4, "kd": 90.0}, False, "ce"),
        ({"ce": 90.0, "kd": 90.0}, False, "ce"),  # a tie: the cheaper one
        ({"ce": 0.30, "kd": 0.25}, True, "kd"),  # a loss: lower is better
        ({"ce": 0.25, "kd": 0.30}, True, "ce"),
    ],
)
def test_the_probe_keeps_kd_only_when_it_scores_better(
    monkeypatch: pytest.MonkeyPatch,
    scores: dict[str, float],
    lower_is_better: bool,
    chosen: str,
) -> None:
    recovered: list[str] = []

    def fake_step(ctx: Any, keep: float, seed: int) -> tuple[str, Any]:
        recovered.append(ctx.recovery)
        return ctx.recovery, type("Structure", (), {"macs_fraction": keep})()

    monkeypatch.setattr(_recovery, "structured_step", fake_step)
    monkeypatch.setattr(dataclasses, "replace", lambda ctx, **kw: _with(ctx, **kw))
    out = _recovery.probe_recovery(_Ctx(_Scores(scores, lower_is_better)), 0.6)  # type: ignore[arg-type]
    assert recovered == ["ce", "kd"]
    assert out["method"] == chosen and out["val"] == scores
    assert out["keep"] == 0.6 == out["macs_fraction"] and out["epochs"] == 1


class _Scores(Metric):
    """A metric that reads each stand-in model's score from a table."""

    def __init__(self, scores: dict[str, float], lower_is_better: bool) -> None:
        super().__init__(lambda model, data: 0.0, lower_is_better=lower_is_better)
        self.scores = scores

    def __call__(self, model: Any, dataset: Any) -> float:
        return self.scores[model]


def _with(ctx: _Ctx, **changes: Any) -> _Ctx:
    copy = _Ctx(ctx.metric)
    copy.__dict__.update(changes)
    return copy


def test_auto_recovery_is_measured_reported_and_used(
    trained: nn.Module, small_splits: Splits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slimkit.search import _trial

    used: list[str] = []
    recover = _trial.recover

    def spy(model: nn.Module, ctx: Any, schedule: TrainConfig, desc: str = "recover") -> None:
        used.append(ctx.recovery)
        recover(model, ctx, schedule, desc)

    monkeypatch.setattr(_trial, "recover", spy)
    cfg = CompressConfig(max_drop=60.0, goal="macs", recover="auto", latency_threads=1, **FAST)
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=None)
    recovery = summary["recovery"]
    assert set(recovery["val"]) == {"ce", "kd"} and recovery["epochs"] == 1
    ce, kd = recovery["val"]["ce"], recovery["val"]["kd"]
    assert recovery["method"] == ("kd" if kd > ce else "ce")
    assert 0.05 < recovery["macs_fraction"] <= 0.65  # a real cut, at most PROBE_KEEP
    assert used[:2] == ["ce", "kd"]  # the probe, then every trial the way it chose
    assert used[2:] and set(used[2:]) == {recovery["method"]}
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"scored {ce:.4g} with cross-entropy and {kd:.4g} with KD" in report
