"""Embedding distillation: losses against their formulas, config checks, a few real steps."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from slimkit.models import SentenceEncoder
from slimkit.testing import TINY_SENTENCES, tiny_sentence_encoder
from slimkit.text import (
    EMBEDDING_TRAIN,
    EmbeddingDistillConfig,
    EmbeddingKDLoss,
    EncoderPruneConfig,
    distill_encoder,
    distill_report,
    hidden_state_loss,
    prune_encoder,
    prune_report,
)
from slimkit.text import _distill as distill_module
from slimkit.text._checkpoint import drop_optimizer
from slimkit.text._distill import LENGTH_POOL, epoch_order, layer_pairs
from slimkit.train import TrainConfig

TEXTS = list(TINY_SENTENCES)


def _schedule(**changes: object) -> TrainConfig:
    return dataclasses.replace(EMBEDDING_TRAIN, **changes)  # type: ignore[arg-type]


def test_embedding_kd_loss_matches_the_formula() -> None:
    s, t = torch.randn(5, 8), torch.randn(5, 8)
    cosine = (s * t).sum(1) / (s.norm(dim=1) * t.norm(dim=1))
    expected = 0.7 * (1 - cosine).mean() + 0.3 * ((s - t) ** 2).mean()
    loss = EmbeddingKDLoss(cosine_weight=0.7, mse_weight=0.3)(s, t)
    torch.testing.assert_close(loss, expected)
    unit_s, unit_t = F.normalize(s, dim=1), F.normalize(t, dim=1)
    half_squared = 0.5 * ((unit_s - unit_t) ** 2).sum(1).mean()  # 1 - cos = ½‖s - t‖² on the sphere
    torch.testing.assert_close(EmbeddingKDLoss()(unit_s, unit_t), half_squared)
    assert EmbeddingKDLoss()(s, s).abs() < 1e-6


def test_hidden_state_loss_ignores_padding_and_averages_layers() -> None:
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    student = [torch.randn(2, 3, 4) for _ in range(2)]
    teacher = [torch.randn(2, 3, 4) for _ in range(2)]
    per_layer = []
    for s, t in zip(student, teacher, strict=True):
        real = [(0, 0), (0, 1), (1, 0)]
        per_layer.append(sum(((s[b, i] - t[b, i]) ** 2).sum() for b, i in real) / (3 * 4))
    expected = torch.stack(per_layer).mean()
    torch.testing.assert_close(hidden_state_loss(student, teacher, mask), expected)
    teacher[0][0, 2] += 100.0  # a padded position: no effect
    torch.testing.assert_close(hidden_state_loss(student, teacher, mask), expected)
    with pytest.raises(ValueError, match="pairs layers in order"):
        hidden_state_loss(student, teacher[:1], mask)


def test_loss_rejects_different_widths() -> None:
    with pytest.raises(ValueError, match="hidden width must not be pruned"):
        EmbeddingKDLoss()(torch.randn(2, 8), torch.randn(2, 6))
    with pytest.raises(ValueError, match="not both 0"):
        EmbeddingKDLoss(cosine_weight=0.0)


def _gap(student: SentenceEncoder, teacher: SentenceEncoder) -> float:
    """Mean squared distance of the last hidden states (embeddings of a random tiny BERT are
    all nearly parallel, so their cosine says little)."""
    batch = teacher.tokenize(TEXTS)
    with torch.no_grad():
        s = student.backbone(**batch).last_hidden_state
        t = teacher.backbone(**batch).last_hidden_state
    return float(hidden_state_loss([s], [t], batch["attention_mask"]))


def test_distillation_brings_a_student_closer_to_its_teacher(
    tiny: SentenceEncoder, tmp_path: Path
) -> None:
    other = tiny_sentence_encoder(tmp_path, seed=1)  # different weights: far from the teacher
    student = prune_encoder(other, EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2"), TEXTS)
    before = _gap(student, tiny)
    cfg = EmbeddingDistillConfig(
        train=_schedule(epochs=8, batch_size=4, lr=1e-3), hidden_weight=1.0
    )
    distill_encoder(student, tiny, TEXTS, cfg, progress=False)
    report = distill_report(student)
    assert _gap(student, tiny) < 0.5 * before
    assert report["steps"] == 8 * 3 and len(report["epoch_loss"]) == 8
    assert report["epoch_loss"][-1] < report["epoch_loss"][0]
    assert not student.training and not tiny.training


def test_frozen_embeddings_stay_put_and_everything_else_trains(
    tiny: SentenceEncoder, tmp_path: Path
) -> None:
    other = tiny_sentence_encoder(tmp_path, seed=1)
    student = prune_encoder(other, EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2"), TEXTS)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    table = student.backbone.get_input_embeddings().weight
    schedule = _schedule(epochs=2, batch_size=4, lr=1e-3)
    cfg = EmbeddingDistillConfig(train=schedule, freeze_embeddings=True)
    distill_encoder(student, tiny, TEXTS, cfg, progress=False)
    after = student.state_dict()
    unchanged = {k for k in before if torch.equal(before[k], after[k])}
    assert any(after[k] is table or torch.equal(after[k], table) for k in unchanged)
    changed = set(before) - unchanged
    assert len(changed) > 0.5 * len(before)  # every layer's weights moved
    assert table.requires_grad  # unfrozen again for whoever trains it next


def test_max_seconds_stops_early_and_says_so(tiny: SentenceEncoder) -> None:
    student = prune_encoder(tiny, EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2"), TEXTS)
    cfg = EmbeddingDistillConfig(train=_schedule(epochs=50, batch_size=4))
    distill_encoder(student, tiny, TEXTS, cfg, progress=False, max_seconds=0.0)
    report = distill_report(student)
    assert report["stopped_early"] and report["steps"] == 1


class _KilledAt(Exception):
    pass


def _kill_after(steps: int) -> Callable[..., float]:
    """A stand-in for ``_Trainer.step`` that raises once ``steps`` steps have run."""
    original = distill_module._Trainer.step

    def step(self: Any, texts: list[str]) -> float:
        if self.steps >= steps:
            raise _KilledAt
        return original(self, texts)

    return step


def _distil_until_killed(
    student: SentenceEncoder,
    teacher: SentenceEncoder,
    cfg: EmbeddingDistillConfig,
    checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    steps: int,
) -> None:
    """Distil with a checkpoint after every step, killed once ``steps`` steps have run."""
    with monkeypatch.context() as patch:
        patch.setattr(distill_module._Trainer, "step", _kill_after(steps))
        with pytest.raises(_KilledAt):
            distill_encoder(
                student,
                teacher,
                TEXTS,
                cfg,
                progress=False,
                checkpoint=checkpoint,
                checkpoint_seconds=1e-9,
            )


@pytest.mark.parametrize("by_length", [False, True], ids=["random", "by-length"])
def test_a_killed_distillation_resumes_from_its_checkpoint_to_the_same_weights(
    tiny: SentenceEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_length: bool
) -> None:
    other = tiny_sentence_encoder(tmp_path, seed=1)
    prune = EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2")
    cfg = EmbeddingDistillConfig(
        train=_schedule(epochs=3, batch_size=4, lr=1e-3), group_by_length=by_length
    )
    whole = prune_encoder(other, prune, TEXTS)
    distill_encoder(whole, tiny, TEXTS, cfg, progress=False)
    checkpoint = tmp_path / "ckpt"
    killed = prune_encoder(other, prune, TEXTS)
    _distil_until_killed(killed, tiny, cfg, checkpoint, monkeypatch, 5)  # 5 of 9 steps on disk
    resumed = prune_encoder(other, prune, TEXTS)
    distill_encoder(resumed, tiny, TEXTS, cfg, progress=False, checkpoint=checkpoint)
    report = distill_report(resumed)
    assert report["resumed_at"] == [5] and report["steps"] == 9
    assert len(report["epoch_loss"]) == 3
    torch.testing.assert_close(report["epoch_loss"], distill_report(whole)["epoch_loss"])
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, msg=name)
    again = prune_encoder(other, prune, TEXTS)  # a finished checkpoint: no training at all
    with monkeypatch.context() as patch:
        patch.setattr(distill_module._Trainer, "step", _kill_after(0))
        distill_encoder(again, tiny, TEXTS, cfg, progress=False, checkpoint=checkpoint)
    torch.testing.assert_close(again.state_dict(), whole.state_dict())


def test_an_unfinished_checkpoint_without_its_optimizer_starts_over(
    tiny: SentenceEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prune = EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2")
    cfg = EmbeddingDistillConfig(train=_schedule(epochs=3, batch_size=4, lr=1e-3))
    checkpoint = tmp_path / "ckpt"
    _distil_until_killed(prune_encoder(tiny, prune, TEXTS), tiny, cfg, checkpoint, monkeypatch, 5)
    drop_optimizer(checkpoint)
    assert (checkpoint / "optimizer.safetensors").is_file()  # unfinished: it is needed
    (checkpoint / "optimizer.safetensors").unlink()
    student = prune_encoder(tiny, prune, TEXTS)
    distill_encoder(student, tiny, TEXTS, cfg, progress=False, checkpoint=checkpoint)
    assert distill_report(student)["resumed_at"] == [] and distill_report(student)["steps"] == 9


def test_a_checkpoint_of_another_distillation_is_not_continued(
    tiny: SentenceEncoder, tmp_path: Path
) -> None:
    prune = EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2")
    cfg = EmbeddingDistillConfig(train=_schedule(epochs=2, batch_size=4, lr=1e-3))
    checkpoint = tmp_path / "ckpt"
    first = prune_encoder(tiny, prune, TEXTS)
    distill_encoder(first, tiny, TEXTS, cfg, progress=False, checkpoint=checkpoint)
    for changed_cfg, texts, student_prune in (
        (dataclasses.replace(cfg, cosine_weight=0.5), TEXTS, prune),  # another loss
        (cfg, TEXTS[::-1], prune),  # other sentences (here: another order)
        (cfg, TEXTS, dataclasses.replace(prune, ffn=0.25)),  # another student's shapes
    ):
        student = prune_encoder(tiny, student_prune, TEXTS)
        distill_encoder(student, tiny, texts, changed_cfg, progress=False, checkpoint=checkpoint)
        report = distill_report(student)
        assert report["resumed_at"] == [] and report["steps"] == 6


def test_a_shallower_student_learns_the_hidden_states_of_the_layers_it_kept(
    tmp_path: Path,
) -> None:
    teacher = tiny_sentence_encoder(tmp_path / "teacher", layers=4)
    student = prune_encoder(teacher, EncoderPruneConfig(layers=0.5, importance="l2"), TEXTS)
    removed = prune_report(student)["dropped_layers"]["removed"]
    kept = [i for i in range(4) if i not in removed]
    assert len(kept) == 2
    assert layer_pairs(student, teacher) == [kept[0], 3]  # the last layer learns the last
    fresh = tiny_sentence_encoder(tmp_path / "fresh", layers=2, seed=1)
    assert layer_pairs(fresh, teacher) == [1, 3]  # no pruning report: evenly spaced
    assert layer_pairs(teacher, teacher) == [0, 1, 2, 3]
    before = _gap(student, teacher)
    cfg = EmbeddingDistillConfig(
        train=_schedule(epochs=16, batch_size=4, lr=1e-3), hidden_weight=1.0
    )
    distill_encoder(student, teacher, TEXTS, cfg, progress=False)
    assert distill_report(student)["layer_pairs"] == [kept[0], 3]
    assert _gap(student, teacher) < 0.5 * before


def test_bf16_autocast_trains_and_the_config_checks_the_precision(
    tiny: SentenceEncoder, tmp_path: Path
) -> None:
    other = tiny_sentence_encoder(tmp_path, seed=1)
    student = prune_encoder(other, EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2"), TEXTS)
    before = _gap(student, tiny)
    cfg = EmbeddingDistillConfig(
        train=_schedule(epochs=8, batch_size=4, lr=1e-3), hidden_weight=1.0, precision="bf16"
    )
    distill_encoder(student, tiny, TEXTS, cfg, progress=False)
    assert _gap(student, tiny) < 0.5 * before
    assert all(p.dtype == torch.float32 for p in student.parameters())
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        EmbeddingDistillConfig(precision="fp16")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EmbeddingDistillConfig(train=_schedule(epochs=0)), "train.epochs must be >= 1"),
        (lambda: EmbeddingDistillConfig(train=_schedule(lr=0.0)), "lr must be > 0"),
        (lambda: EmbeddingDistillConfig(hidden_weight=-1.0), "hidden_weight must be >= 0"),
        (lambda: EmbeddingDistillConfig(cosine_weight=0.0), "at least one loss weight"),
        (
            lambda: EmbeddingDistillConfig(train=_schedule(augment="crop-flip")),
            "train.augment does not apply to embedding distillation; leave it 'none'",
        ),
        (
            lambda: EmbeddingDistillConfig(train=_schedule(label_smoothing=0.1)),
            "train.label_smoothing does not apply",
        ),
        (lambda: EmbeddingDistillConfig(train={"epochs": 2}), "must be a slimkit.TrainConfig"),
    ],
)
def test_config_errors_name_the_field(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_the_default_schedule_is_the_one_the_trainer_always_ran() -> None:
    schedule = EmbeddingDistillConfig().train
    assert schedule == EMBEDDING_TRAIN
    assert (schedule.epochs, schedule.batch_size, schedule.lr, schedule.seed) == (1, 32, 1e-4, 0)
    assert (schedule.optimizer, schedule.weight_decay) == ("adamw", 0.01)
    assert schedule.schedule == "warmup-linear"


def test_config_round_trips_through_a_dict() -> None:
    cfg = EmbeddingDistillConfig(train=_schedule(epochs=2), hidden_weight=1.0)
    assert EmbeddingDistillConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["version"] == 2
    with pytest.raises(ValueError, match=r"unknown keys \['epoch'\]"):
        EmbeddingDistillConfig.from_dict({"epoch": 2})
    # A part of the schedule is completed from the default schedule, not TrainConfig's.
    partial = EmbeddingDistillConfig.from_dict({"train": {"lr": 1e-3}})
    assert partial.train == _schedule(lr=1e-3)


def test_a_layout_1_dict_with_flat_schedule_fields_still_loads() -> None:
    # As compress_encoder's reports and benchmarks/minilm.py's records hold it.
    written = {
        "method": "embedding-kd",
        "epochs": 11,
        "batch_size": 64,
        "lr": 0.0005,
        "max_length": 128,
        "cosine_weight": 1.0,
        "mse_weight": 0.0,
        "hidden_weight": 1.0,
        "freeze_embeddings": True,
        "seed": 3,
    }
    cfg = EmbeddingDistillConfig.from_dict(written)
    assert cfg.train == _schedule(epochs=11, batch_size=64, lr=0.0005, seed=3)
    assert cfg.freeze_embeddings and cfg.hidden_weight == 1.0
    with pytest.raises(ValueError, match=r"has both train and \['epochs'\]"):
        EmbeddingDistillConfig.from_dict({"epochs": 2, "train": {"epochs": 3}})


def _padded(texts: list[str], order: list[int], size: int) -> int:
    """Characters a batch-by-batch run pads to: each batch's longest times its size."""
    batches = [order[first : first + size] for first in range(0, len(order), size)]
    return sum(len(batch) * max(len(texts[i]) for i in batch) for batch in batches)


def test_batches_by_length_pad_less_and_still_cover_every_sentence_in_random_order() -> None:
    rng = random.Random(0)
    texts = ["w" * rng.randint(1, 200) for _ in range(4 * LENGTH_POOL * 8 + 5)]
    size = 8
    plain = epoch_order(texts, size, seed=3, group_by_length=False)
    grouped = epoch_order(texts, size, seed=3, group_by_length=True)
    assert sorted(grouped) == sorted(plain) == list(range(len(texts)))
    assert grouped == epoch_order(texts, size, seed=3, group_by_length=True)  # resumable
    assert grouped != epoch_order(texts, size, seed=4, group_by_length=True)
    assert _padded(texts, grouped, size) < 0.7 * _padded(texts, plain, size)
    full = len(texts) // size * size
    longest = [max(len(texts[i]) for i in grouped[f : f + size]) for f in range(0, full, size)]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)
    assert len(grouped[full:]) == 5  # the short batch is the last
