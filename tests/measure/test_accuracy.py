from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit import Splits, evaluate_accuracy
from slimkit.data import make_loader
from slimkit.testing import ConstantClassifier, random_splits


def _labels(splits: Splits) -> torch.Tensor:
    return torch.cat([y for _, y in make_loader(splits.test, batch_size=1000)])


@pytest.mark.parametrize("label", [0, 3, 9])
def test_constant_prediction_scores_the_class_frequency(fmnist: Splits, label: int) -> None:
    labels = _labels(fmnist)
    expected = 100.0 * float((labels == label).sum()) / len(labels)
    assert 0 < expected < 100  # the slice holds this class and others
    # batch_size 100 does not divide 256: the last, partial batch must count too
    accuracy = evaluate_accuracy(ConstantClassifier(label), fmnist.test, batch_size=100)
    assert accuracy == pytest.approx(expected, abs=1e-9)


def test_accuracy_of_a_perfect_lookup_model() -> None:
    splits = random_splits(test=50)
    x, y = splits.test.tensors

    class Lookup(nn.Module):
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            index = (batch.reshape(len(batch), 1, -1) == x.reshape(1, len(x), -1)).all(-1)
            return nn.functional.one_hot(y[index.int().argmax(1)], 10).float()

    assert evaluate_accuracy(Lookup(), splits.test, batch_size=16) == 100.0


def test_evaluation_restores_training_mode() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10)).train()
    evaluate_accuracy(model, random_splits().test)
    assert model.training


def test_paired_drop_and_its_standard_error_by_hand() -> None:
    import math

    from slimkit.measure import paired_drop

    reference = torch.tensor([True, True, True, True, False, True, True, False])
    candidate = torch.tensor([True, False, True, True, True, False, True, False])
    drop, error = paired_drop(reference, candidate)
    # Differences: 0, 1, 0, 0, -1, 1, 0, 0 -> mean 1/8; sample std sqrt((3 - 8/64) / 7).
    assert drop == pytest.approx(100 * 1 / 8)
    assert error == pytest.approx(100 * math.sqrt((3 - 8 / 64) / 7) / math.sqrt(8))
    assert paired_drop(reference, reference) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same 2"):
        paired_drop(reference, candidate[:4])


def test_correct_mask_matches_accuracy(fmnist: Splits) -> None:
    from slimkit.measure import correct_mask

    labels = _labels(fmnist)
    hits = correct_mask(ConstantClassifier(3), fmnist.test, batch_size=100)
    assert hits.dtype == torch.bool and torch.equal(hits, labels == 3)
    accuracy = evaluate_accuracy(ConstantClassifier(3), fmnist.test)
    assert 100 * float(hits.double().mean()) == pytest.approx(accuracy)
