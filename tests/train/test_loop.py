from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slimkit import Splits, TrainConfig, evaluate_accuracy, train
from slimkit.data import make_loader
from slimkit.data._splits import take
from slimkit.testing import seeded_model
from slimkit.train import learning_rate


@pytest.fixture(scope="module")
def small(fmnist: Splits) -> Splits:
    """128 real training examples: 4 steps per epoch at batch size 32."""
    return dataclasses.replace(fmnist, train=take(fmnist.train, 128))


def _mean_loss(model: nn.Module, splits: Splits) -> float:
    x, y = next(iter(make_loader(splits.train, batch_size=len(splits.train))))  # type: ignore[arg-type]
    with torch.no_grad():
        return float(F.cross_entropy(model.eval()(x), y))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_reduces_the_loss(fmnist: Splits) -> None:
    model = seeded_model("seed-cnn-slim")
    before = _mean_loss(model, fmnist)
    result = train(model, fmnist, TrainConfig(epochs=2, lr=2e-3, batch_size=64), progress=False)
    assert len(result.losses) == len(result.val_accuracies) == 2
    assert result.losses[1] < result.losses[0]
    assert _mean_loss(model, fmnist) < before - 0.3
    assert result.val_accuracies[-1] > 25.0  # chance is 10%
    assert result.val_accuracies[-1] == evaluate_accuracy(model, fmnist.val)
    assert not model.training


class _Interrupt(Exception):
    pass


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(
    small: Splits, tmp_path: Path
) -> None:
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=32, seed=3)
    straight = seeded_model("seed-cnn-slim")
    straight_result = train(straight, small, cfg, checkpoint=tmp_path / "a.ckpt", progress=False)

    checkpoint = tmp_path / "b.ckpt"
    steps = 0

    def crash_in_second_epoch(model: nn.Module) -> None:
        nonlocal steps
        steps += 1
        if steps == 6:  # 4 steps per epoch: the checkpoint of epoch 1 is on disk
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(
            seeded_model("seed-cnn-slim"),
            small,
            cfg,
            checkpoint=checkpoint,
            after_step=crash_in_second_epoch,
            progress=False,
        )
    resumed = seeded_model("seed-cnn-slim", seed=99)  # its own weights are replaced on resume
    resumed_result = train(resumed, small, cfg, checkpoint=checkpoint, resume=True, progress=False)

    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    assert resumed_result.losses == straight_result.losses
    assert resumed_result.val_accuracies == straight_result.val_accuracies
    assert len(resumed_result.epoch_seconds) == 2  # the first epoch's time survives the resume
    assert len(resumed_result.losses) == 2


def test_resume_without_a_checkpoint_starts_from_scratch(small: Splits, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, batch_size=32)
    a, b = seeded_model("seed-cnn-slim"), seeded_model("seed-cnn-slim")
    train(a, small, cfg, progress=False)
    train(b, small, cfg, checkpoint=tmp_path / "none.ckpt", resume=True, progress=False)
    assert all(torch.equal(b.state_dict()[k], v) for k, v in a.state_dict().items())


def test_zero_epochs_leave_the_model_as_it_is(small: Splits) -> None:
    model = seeded_model("seed-cnn-slim")
    before = _state(model)
    result = train(model, small, TrainConfig(epochs=0), progress=False)
    assert result.losses == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_after_step_runs_after_every_optimizer_step(small: Splits) -> None:
    calls: list[int] = []
    model = seeded_model("seed-cnn-slim")

    def hook(m: nn.Module) -> None:
        assert m is model and m.training
        calls.append(len(calls))

    train(model, small, TrainConfig(epochs=1, batch_size=50), after_step=hook, progress=False)
    assert len(calls) == 3  # 128 examples in batches of 50, 50, 28


def test_custom_loss_is_used(small: Splits) -> None:
    seen: list[int] = []

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(len(y))
        return (model(x) - 1.0).pow(2).mean()  # every logit towards 1, ignoring the labels

    def distance_to_one(model: nn.Module) -> float:
        x, _ = next(iter(make_loader(small.train, batch_size=128)))
        with torch.no_grad():
            return float((model.eval()(x) - 1.0).pow(2).mean())

    model = seeded_model("seed-cnn-slim")
    before = distance_to_one(model)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-2, schedule="constant")
    result = train(model, small, cfg, loss_fn=loss_fn, progress=False)
    assert seen == [16] * 8
    assert distance_to_one(model) < 0.75 * before
    assert result.losses[0] < before


def test_cosine_schedule_decays_to_zero() -> None:
    cfg = TrainConfig(lr=0.1)
    assert learning_rate(cfg, 0, 100) == pytest.approx(0.1)
    assert learning_rate(cfg, 50, 100) == pytest.approx(0.05)
    assert learning_rate(cfg, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(TrainConfig(lr=0.1, schedule="constant"), 99, 100) == 0.1


def test_warmup_linear_rises_over_five_percent_then_falls_to_zero() -> None:
    # The schedule slimkit.text's embedding distillation always ran (a LambdaLR factor).
    cfg = TrainConfig(lr=0.1, schedule="warmup-linear")
    total, warmup = 200, 10

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    assert [learning_rate(cfg, s, total) for s in range(total)] == [
        0.1 * factor(s) for s in range(total)
    ]
    assert learning_rate(cfg, 0, total) == pytest.approx(0.01)
    assert learning_rate(cfg, warmup - 1, total) == pytest.approx(0.1)
    assert learning_rate(cfg, total - 1, total) == pytest.approx(0.1 / (total - warmup))
    assert learning_rate(cfg, 0, 3) == 0.1  # a short run warms up over one step


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"optimizer": "lion"}, r"optimizer must be one of \('adam', 'adamw', 'sgd'\)"),
        (
            {"schedule": "step"},
            r"schedule must be one of \('cosine', 'constant', 'warmup-linear'\)",
        ),
        # kinds and finite values, as a recipe's YAML or a flag gives them
        ({"lr": float("nan")}, "lr must be a finite number, got nan"),
        ({"epochs": 1.5}, "epochs must be an integer, got 1.5"),
        ({"batch_size": True}, "batch_size must be an integer, got True"),
        ({"seed": "0"}, "seed must be an integer, got '0'"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
        ({"augment": "mixup"}, r"augment must be one of \['crop-flip', 'none'\], got 'mixup'"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"TrainConfig.{message}"):
        TrainConfig(**kwargs)


def test_config_is_keyword_only_and_round_trips() -> None:
    cfg = TrainConfig(epochs=3, optimizer="sgd", weight_decay=5e-4)
    assert TrainConfig(**cfg.to_dict()) == cfg
    with pytest.raises(TypeError):
        TrainConfig(3)  # type: ignore[misc]


def test_config_from_dict_names_the_valid_keys() -> None:
    cfg = TrainConfig(epochs=3, augment="crop-flip")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(
        ValueError, match=r"unknown keys \['epoch'\] for TrainConfig; valid: .*'epochs'"
    ):
        TrainConfig.from_dict({"epoch": 3})


def test_resume_with_augmentation_gives_the_same_weights(small: Splits, tmp_path: Path) -> None:
    """The augmentations of the epochs after a resume are the ones the straight run drew."""
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=32, seed=5, augment="crop-flip")
    straight = seeded_model("seed-cnn-slim")
    train(straight, small, cfg, progress=False)

    checkpoint = tmp_path / "c.ckpt"
    first = seeded_model("seed-cnn-slim")
    steps = 0

    def crash_in_second_epoch(model: nn.Module) -> None:
        nonlocal steps
        steps += 1
        if steps == 6:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(
            first,
            small,
            cfg,
            checkpoint=checkpoint,
            after_step=crash_in_second_epoch,
            progress=False,
        )
    resumed = seeded_model("seed-cnn-slim", seed=99)
    train(resumed, small, cfg, checkpoint=checkpoint, resume=True, progress=False)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name


def test_resume_refuses_a_checkpoint_of_another_config(small: Splits, tmp_path: Path) -> None:
    checkpoint = tmp_path / "c.ckpt"
    cfg = TrainConfig(epochs=1, batch_size=64)
    train(seeded_model("seed-cnn-slim"), small, cfg, checkpoint=checkpoint, progress=False)
    other = dataclasses.replace(cfg, epochs=3, augment="crop-flip", lr=0.1)
    message = r"written with augment='none' \(now 'crop-flip'\), lr=0.001 \(now 0.1\); pass"
    with pytest.raises(ValueError, match=message):
        train(seeded_model("seed-cnn-slim"), small, other, checkpoint=checkpoint, resume=True)
    # More epochs alone continue the run.
    longer = dataclasses.replace(cfg, epochs=2)
    result = train(
        seeded_model("seed-cnn-slim"),
        small,
        longer,
        checkpoint=checkpoint,
        resume=True,
        progress=False,
    )
    assert len(result.losses) == 2


def test_training_with_augmentation_learns(fmnist: Splits) -> None:
    model = seeded_model("seed-cnn-slim")
    before = _mean_loss(model, fmnist)
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=64, augment="crop-flip")
    result = train(model, fmnist, cfg, progress=False)
    assert result.losses[1] < result.losses[0]
    assert _mean_loss(model, fmnist) < before - 0.3
    assert result.val_accuracies[-1] > 25.0
    assert len(result.epoch_seconds) == 2 and all(t > 0 for t in result.epoch_seconds)


def test_augmentation_changes_what_the_model_sees_but_not_the_labels(small: Splits) -> None:
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"none": [], "crop-flip": []}

    def recording(augment: str):
        def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            seen[augment].append((x.clone(), y.clone()))
            return F.cross_entropy(model(x), y)

        return loss_fn

    for augment in seen:
        cfg = TrainConfig(epochs=1, batch_size=32, augment=augment)
        train(seeded_model("seed-cnn-slim"), small, cfg, loss_fn=recording(augment), progress=False)
    for (plain_x, plain_y), (aug_x, aug_y) in zip(seen["none"], seen["crop-flip"], strict=True):
        assert torch.equal(plain_y, aug_y)  # same shuffling, labels untouched
        assert aug_x.shape == plain_x.shape
        assert not torch.equal(aug_x, plain_x)
