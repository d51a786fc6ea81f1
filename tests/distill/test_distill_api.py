"""distill(): the student learns, the teacher is untouched, adapters train, bad input fails."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

import slimkit
from slimkit import DistillConfig, ModelError, Splits, TrainConfig, distill
from slimkit.data._splits import take
from slimkit.testing import ConcatNet, TinyConvNet, random_splits, seeded_model


@pytest.fixture(scope="module")
def teacher(fmnist: Splits) -> nn.Module:
    """seed-cnn trained for three epochs on the 512-example slice (about 70% top-1)."""
    model = seeded_model("seed-cnn")
    slimkit.train(model, fmnist, TrainConfig(epochs=3, lr=3e-3, batch_size=64), progress=False)
    return model


@pytest.fixture(scope="module")
def small(fmnist: Splits) -> Splits:
    return dataclasses.replace(fmnist, train=take(fmnist.train, 128))


def _cfg(**kwargs: object) -> DistillConfig:
    train = TrainConfig(epochs=1, lr=2e-3, batch_size=32, schedule="constant")
    # PyTorch's teacher: these tests compare runs bit for bit (test_teacher.py covers runtimes)
    return DistillConfig(**{"train": train, "teacher_runtime": "torch", **kwargs})  # type: ignore[arg-type]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_the_student_learns_from_the_teacher(teacher: nn.Module, fmnist: Splits) -> None:
    assert slimkit.evaluate_accuracy(teacher, fmnist.val) > 60.0
    student = seeded_model("seed-cnn-slim")
    before = slimkit.evaluate_accuracy(student, fmnist.val)
    cfg = DistillConfig(temperature=2.0, train=TrainConfig(epochs=4, lr=3e-3, batch_size=64))
    result = distill(student, teacher, fmnist, cfg, progress=False)
    after = slimkit.evaluate_accuracy(student, fmnist.val)
    assert result is student and not student.training
    assert after > 55.0 and after > before + 30.0  # chance is 10%


def test_alpha_zero_is_plain_training(teacher: nn.Module, small: Splits) -> None:
    # Also checks the cached-logits path: it re-labels examples by index and maps them back.
    plain = seeded_model("seed-cnn-slim")
    slimkit.train(plain, small, _cfg().train, progress=False)
    distilled = seeded_model("seed-cnn-slim")
    distill(distilled, teacher, small, _cfg(alpha=0.0), progress=False)
    assert _same(plain, distilled)


def test_cached_teacher_logits_change_nothing(teacher: nn.Module, small: Splits) -> None:
    cached, fresh = seeded_model("seed-cnn-slim"), seeded_model("seed-cnn-slim")
    distill(cached, teacher, small, _cfg(cache_teacher=True), progress=False)
    distill(fresh, teacher, small, _cfg(cache_teacher=False), progress=False)
    for a, b in zip(cached.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_teacher_is_frozen_in_eval_mode_and_restored() -> None:
    teacher = ConcatNet().train()  # batch norm: training mode would update running stats
    before = _state(teacher)
    seen: list[tuple[bool, bool]] = []
    teacher.register_forward_pre_hook(
        lambda module, inputs: seen.append((module.training, torch.is_grad_enabled()))
    )
    splits = random_splits(train=32, val=8, test=8, input_shape=(1, 8, 8))
    cfg = _cfg(hint_layers=(("grouped", "bn"),), attention_weight=1.0)
    with pytest.warns(UserWarning, match="the teacher is in training mode"):
        distill(TinyConvNet(), teacher, splits, cfg, progress=False)
    assert seen and all(not training and not grad for training, grad in seen)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert teacher.training and all(p.requires_grad for p in teacher.parameters())


def test_hint_adapters_are_trained_with_the_student(
    teacher: nn.Module, small: Splits, tmp_path: Path
) -> None:
    student = seeded_model("seed-cnn-slim")
    checkpoint = tmp_path / "kd.ckpt"
    distill(
        student, teacher, small, _cfg(hint_layers="auto"), checkpoint=checkpoint, progress=False
    )
    with safe_open(str(checkpoint), framework="pt") as handle:
        names = list(handle.keys())
        adapter = handle.get_tensor("model.hint.adapters.1.weight")
    assert adapter.shape == (32, 16, 1, 1)  # conv2: 16 student channels → 32 teacher channels
    assert "model.student.conv1.weight" in names
    # Adam keeps moments for every trained tensor: the student's 8 and the two adapters.
    assert sum(n.endswith(".exp_avg") for n in names) == 8 + 2
    assert not any(name.startswith("hint") for name in student.state_dict())


def test_resume_restores_student_and_adapters(
    teacher: nn.Module, small: Splits, tmp_path: Path
) -> None:
    straight = seeded_model("seed-cnn-slim")
    cfg = _cfg(hint_layers="auto", train=TrainConfig(epochs=2, batch_size=32, schedule="constant"))
    distill(straight, teacher, small, cfg, progress=False)
    resumed, checkpoint = seeded_model("seed-cnn-slim"), tmp_path / "r.ckpt"
    first = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1))
    distill(resumed, teacher, small, first, checkpoint=checkpoint, progress=False)
    distill(resumed, teacher, small, cfg, checkpoint=checkpoint, resume=True, progress=False)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_different_numbers_of_classes(teacher: nn.Module, small: Splits) -> None:
    student = slimkit.create_model("seed-cnn-slim", num_classes=5)
    with pytest.raises(ModelError, match=r"the student predicts \(5,\) .* the teacher \(10,\)"):
        distill(student, teacher, small, _cfg(), progress=False)


def test_unknown_hint_layer(teacher: nn.Module, small: Splits) -> None:
    cfg = _cfg(hint_layers=(("conv1", "features.0"),))
    with pytest.raises(ValueError, match=r"the teacher has no module 'features\.0'.*conv1, conv2"):
        distill(seeded_model("seed-cnn-slim"), teacher, small, cfg, progress=False)


def test_kd_loss_for_recovery(teacher: nn.Module, small: Splits) -> None:
    from slimkit.distill import kd_loss

    student = seeded_model("seed-cnn")
    loss_fn = kd_loss(teacher, temperature=4.0, alpha=1.0)
    x, y = next(iter(slimkit.data.make_loader(small.train, batch_size=16)))
    with torch.no_grad():
        value = loss_fn(student, x, y)
        expected = slimkit.LogitKD(temperature=4.0, alpha=1.0)(student(x), teacher(x))
    torch.testing.assert_close(value, expected)
    # A student that is a copy of its teacher has nothing left to learn.
    assert loss_fn(teacher, x, y).item() == pytest.approx(0.0, abs=1e-5)
