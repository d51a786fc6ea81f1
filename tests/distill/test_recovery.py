"""Recovering pruned models by distillation: the loss reaches every fine-tuning path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimkit
from slimkit import StructuredConfig, TrainConfig, UnstructuredConfig
from slimkit.distill import kd_loss
from slimkit.testing import TinyConvNet, random_splits

SPLITS = random_splits(train=64, val=16, test=16, input_shape=(1, 8, 8))
SCHEDULE = TrainConfig(epochs=1, batch_size=32)


class _Spy:
    """Counts the steps a loss function is used for, and delegates to KD."""

    def __init__(self, teacher: nn.Module) -> None:
        self.calls = 0
        self.loss = kd_loss(teacher)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.loss(model, x, y)


@pytest.mark.parametrize(
    "cfg", [UnstructuredConfig(sparsity=0.5), StructuredConfig(ratio=0.5)], ids=["un", "structured"]
)
def test_prune_fine_tunes_with_the_given_loss(cfg: object) -> None:
    teacher = TinyConvNet()
    spy = _Spy(teacher)
    pruned = slimkit.prune(teacher, cfg, data=SPLITS, train=SCHEDULE, loss_fn=spy, progress=False)
    assert spy.calls == 2  # one epoch of 64 examples at batch size 32
    assert pruned is not teacher


def test_the_budget_search_fine_tunes_with_the_given_loss() -> None:
    teacher = TinyConvNet()
    spy = _Spy(teacher)
    search = slimkit.search_sparsity(
        teacher,
        SPLITS,
        UnstructuredConfig(sparsity=0.0),
        max_drop=100.0,
        train=SCHEDULE,
        max_trials=2,
        loss_fn=spy,
        progress=False,
    )
    assert len(search.trials) == 2 and spy.calls == 2 * 2
