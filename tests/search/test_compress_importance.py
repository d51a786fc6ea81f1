"""compress with a criterion that reads data: the calibration batches reach it in the
sensitivity stage and in every trial (a trial's prune once had none: an uncaught ValueError)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from slimkit import Splits
from slimkit.importance._group import ActivationGroupImportance, TaylorGroupImportance
from slimkit.search import CompressConfig, compress
from slimkit.train import TrainConfig

CRITERIA = {"taylor": TaylorGroupImportance, "activation": ActivationGroupImportance}


@pytest.mark.parametrize("importance", ["taylor", "activation", "apoz"])
def test_a_data_driven_criterion_scores_on_calibration_batches_in_every_trial(
    trained: nn.Module,
    small_splits: Splits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    importance: str,
) -> None:
    criterion = CRITERIA["taylor" if importance == "taylor" else "activation"]
    real = criterion.__call__
    batches: list[list[int]] = []

    def spy(self: Any, graph: Any, model: nn.Module, calib: Iterable[Any] | None = None) -> Any:
        batches.append([len(x) for x, _ in calib or []])
        return real(self, graph, model, calib)

    monkeypatch.setattr(criterion, "__call__", spy)
    cfg = CompressConfig(
        max_drop=100.0, goal="macs", quantize=False, importance=importance, trials=1,
        recover="ce", recover_train=TrainConfig(epochs=0), sensitivity_images=128,
        sensitivity_ratios=(0.5,),
    )  # fmt: skip
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=None)

    # Once for the sensitivity stage's pruner, once for the trial's prune: 4 batches of 64
    # training images each time (StructuredConfig.calib_batches).
    assert batches == [[64, 64, 64, 64]] * 2
    (trial,) = json.loads((tmp_path / "run" / "trials.json").read_text())
    assert trial["structured"]["ratios"] and trial["macs"] < summary["baseline"]["macs"]
    assert summary["result"]["macs"] == trial["macs"]
