"""A trial's latency is timed against the original model, in the baseline's conditions."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from slimkit.search import _trial
from slimkit.search._config import CompressConfig


def _context(baseline_ms: dict[str, float]) -> _trial.Context:
    original = nn.Linear(4, 2)
    ctx = _trial.Context(
        model=original,
        splits=None,  # type: ignore[arg-type]
        cfg=CompressConfig(goal="latency", max_drop=1.0),
        pruner=None,  # type: ignore[arg-type]
        curves=[],
        baseline_val=90.0,
        device=torch.device("cpu"),
    )
    ctx.baseline_ms = baseline_ms
    return ctx


def _fake_timer(calls: list[tuple[Any, ...]]) -> Any:
    """interleaved_latency stand-in: the deployed model takes 30 ms and the original 60 ms
    at batch 64 (3 and 4 ms at batch 1), as if the machine ran at half the baseline's speed."""

    def timer(runners: list[Any], x: torch.Tensor) -> list[float]:
        calls.append((runners, x.shape[0]))
        return [30.0, 60.0] if x.shape[0] == 64 else [3.0, 4.0]

    return timer


def test_latency_is_the_baseline_scaled_by_the_interleaved_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(_trial, "interleaved_latency", _fake_timer(calls))
    ctx = _context({"latency_ms_b1": 2.0, "latency_ms_b64": 40.0})
    deployed = nn.Identity()
    out = _trial.deployed_latency(deployed, ctx, torch.zeros(64, 4))
    assert out == {
        "latency_ms_b1_raw": 3.0,
        "latency_ms_b1": pytest.approx(2.0 * 3.0 / 4.0),
        "latency_ms_b64_raw": 30.0,
        "latency_ms_b64": pytest.approx(40.0 * 30.0 / 60.0),
    }
    # Each batch size timed once, the deployed model beside the original.
    assert [(r[0], r[1], n) for r, n in calls] == [
        (deployed, ctx.model, 1),
        (deployed, ctx.model, 64),
    ]


def test_without_a_baseline_time_the_raw_time_is_the_latency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_trial, "interleaved_latency", _fake_timer([]))
    out = _trial.deployed_latency(nn.Identity(), _context({}), torch.zeros(64, 4))
    assert out["latency_ms_b64"] == out["latency_ms_b64_raw"] == 30.0
    assert out["latency_ms_b1"] == out["latency_ms_b1_raw"] == 3.0


def test_with_a_reference_graph_trials_are_timed_against_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The original's fp32 graph on a runtime is the yardstick when there is one: its time
    # from the baseline stage scales the ratio, eager PyTorch is not timed at all.
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(_trial, "interleaved_latency", _fake_timer(calls))
    ctx = _context({"latency_ms_b1": 2.0, "latency_ms_b64": 40.0})
    ctx.reference = nn.Identity()
    ctx.reference_ms = {"latency_ms_b1": 0.5, "latency_ms_b64": 4.0}
    out = _trial.deployed_latency(nn.Identity(), ctx, torch.zeros(64, 4))
    assert out["latency_ms_b64"] == pytest.approx(4.0 * 30.0 / 60.0)
    assert out["latency_ms_b1"] == pytest.approx(0.5 * 3.0 / 4.0)
    assert all(runners[1] is ctx.reference for runners, _ in calls)


def test_qat_that_cannot_trace_the_model_keeps_the_static_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from slimkit.errors import UnsupportedOpError
    from slimkit.quantize import QATConfig

    static = nn.Identity()

    def fake_quantize(model: nn.Module, cfg: Any, **_: Any) -> nn.Module:
        if isinstance(cfg, QATConfig):
            raise UnsupportedOpError("static quantization needs a traceable model")
        return static

    # slimkit.quantize is also the top-level verb: patch the subpackage's attribute
    monkeypatch.setattr(sys.modules["slimkit.quantize"], "quantize", fake_quantize)
    ctx = _context({})
    from slimkit.measure import Metric

    ctx.metric = Metric(lambda model, data: 50.0)  # 40 below the baseline: PTQ misses
    ctx.splits = types.SimpleNamespace(val=None)  # type: ignore[assignment]
    q, label = _trial.quantize_step(nn.Linear(4, 2), ctx, seed=0, allow_qat=True)
    assert q is static and label == "int8-static"
