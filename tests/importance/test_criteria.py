from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slimkit.importance import (
    ELEMENTWISE,
    ActivationImportance,
    MagnitudeImportance,
    RandomImportance,
    TaylorImportance,
)
from slimkit.testing import TinyConvNet, fixed_init_


def _targets(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}


def _batches(*shapes: tuple[int, ...], classes: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    return [
        (
            torch.randn(shape, generator=generator),
            torch.randint(classes, (shape[0],), generator=generator),
        )
        for shape in shapes
    ]


def test_registry_names() -> None:
    assert ELEMENTWISE.names() == ["activation", "magnitude", "random", "taylor"]
    assert [ELEMENTWISE.get(n)().needs_data for n in ELEMENTWISE.names()] == [
        True,
        False,
        False,
        True,
    ]


def test_magnitude_is_absolute_weight() -> None:
    model = TinyConvNet()
    scores = MagnitudeImportance()(model, _targets(model))
    assert scores.keys() == {"conv", "grouped", "fc"}
    for name, module in _targets(model).items():
        assert torch.equal(scores[name], module.weight.detach().abs())


def test_taylor_is_summed_weight_times_gradient_by_hand() -> None:
    model = fixed_init_(nn.Sequential(nn.Linear(4, 3)), seed=1).train()
    batches = _batches((5, 4), (2, 4))
    scores = TaylorImportance()(model, {"0": model[0]}, batches)
    weight, bias = model[0].weight.detach(), model[0].bias.detach()
    expected = torch.zeros_like(weight)
    for x, y in batches:
        # d mean-cross-entropy / dW = (softmax(xW^T + b) - onehot(y))^T x / N
        probs = torch.softmax(x @ weight.T + bias, dim=1)
        grad = (probs - F.one_hot(y, 3).float()).T @ x / len(x)
        expected += (weight * grad).abs()
    assert torch.allclose(scores["0"], expected, atol=1e-6)
    assert model.training  # mode restored
    assert model[0].weight.grad is None  # no gradients left behind


def test_activation_for_linear_is_weight_times_input_norm() -> None:
    model = fixed_init_(nn.Sequential(nn.Linear(6, 3)))
    batches = _batches((5, 6), (3, 6))
    scores = ActivationImportance()(model, {"0": model[0]}, batches)
    x = torch.cat([b[0] for b in batches])
    norms = x.pow(2).sum(0).sqrt()  # ||x_j||_2 over every calibration example
    assert torch.allclose(scores["0"], model[0].weight.abs() * norms[None, :])


def test_activation_for_plain_and_grouped_convs() -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1)
    grouped = nn.Conv2d(6, 4, 3, padding=1, groups=2)  # output o reads inputs 3*(o//2) .. +2
    model = fixed_init_(nn.Sequential(conv, nn.ReLU(), grouped))
    batches = _batches((2, 4, 5, 5), (3, 4, 5, 5))
    scores = ActivationImportance()(model, {"conv": conv, "grouped": grouped}, batches)

    x = torch.cat([b[0] for b in batches])
    with torch.no_grad():
        hidden = torch.relu(conv(x))
    x_norms = x.pow(2).sum((0, 2, 3)).sqrt()
    h_norms = hidden.pow(2).sum((0, 2, 3)).sqrt()
    expected_conv = conv.weight.detach().abs() * x_norms[None, :, None, None]
    assert torch.allclose(scores["conv"], expected_conv)
    expected_grouped = torch.empty_like(grouped.weight)
    for o in range(4):
        for j in range(3):
            channel = 3 * (o // 2) + j
            expected_grouped[o, j] = grouped.weight[o, j].detach().abs() * h_norms[channel]
    assert torch.allclose(scores["grouped"], expected_grouped, rtol=1e-5)


def test_activation_rejects_layers_the_data_never_reaches() -> None:
    model = fixed_init_(nn.Sequential(nn.Linear(6, 3)))
    unused = nn.Linear(3, 3)
    with pytest.raises(ValueError, match=r"layers \['unused'\] never ran"):
        ActivationImportance()(model, {"0": model[0], "unused": unused}, _batches((2, 6)))


@pytest.mark.parametrize("criterion", [TaylorImportance(), ActivationImportance()])
def test_data_driven_criteria_need_calibration(criterion: object) -> None:
    model = TinyConvNet()
    with pytest.raises(ValueError, match="needs calibration data"):
        criterion(model, _targets(model), None)  # type: ignore[operator]


def test_random_is_seeded_and_deterministic() -> None:
    model = TinyConvNet()
    targets = _targets(model)
    first = RandomImportance(seed=5)(model, targets)
    torch.manual_seed(999)  # the global RNG must not matter
    again = RandomImportance(seed=5)(model, targets)
    other = RandomImportance(seed=6)(model, targets)
    for name, module in targets.items():
        assert first[name].shape == module.weight.shape
        assert torch.equal(first[name], again[name])
        assert not torch.equal(first[name], other[name])
        assert float(first[name].min()) >= 0.0 and float(first[name].max()) < 1.0
