"""Embedding-level knowledge distillation on unlabeled text: a pruned sentence encoder learns to
reproduce the original's embeddings (and, optionally, its hidden states layer by layer).

No labels are needed: every sentence gives a target, the teacher's embedding of it.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._config import ConfigBase, nest
from ..models import SentenceEncoder
from ..train import TrainConfig, learning_rate, make_optimizer
from ._checkpoint import Progress, load_checkpoint, progress_key, save_checkpoint
from ._layers import layer_count
from ._prune import TextBatch, prune_report

REPORT_ATTR = "slimkit_distill_report"


class EmbeddingKDLoss(nn.Module):
    """Distance between the student's and the teacher's sentence embeddings.

    ``loss = cosine_weight · mean_b (1 − cos(s_b, t_b)) + mse_weight · mean_{b,k} (s_bk − t_bk)²``

    For L2-normalised embeddings ``1 − cos = ½‖s − t‖²``, so the two terms differ only in scale
    (the MSE term is averaged over the embedding width as well).

    Args:
        cosine_weight: weight of the cosine term (>= 0).
        mse_weight: weight of the mean squared error (>= 0).

    Example:
        >>> loss = EmbeddingKDLoss()(student_embeddings, teacher_embeddings.detach())
    """

    def __init__(self, *, cosine_weight: float = 1.0, mse_weight: float = 0.0) -> None:
        super().__init__()
        if cosine_weight < 0 or mse_weight < 0 or cosine_weight + mse_weight == 0:
            raise ValueError(
                "EmbeddingKDLoss weights must be >= 0 and not both 0, got "
                f"cosine_weight={cosine_weight}, mse_weight={mse_weight}"
            )
        self.cosine_weight = float(cosine_weight)
        self.mse_weight = float(mse_weight)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape != teacher.shape:
            raise ValueError(
                f"student embeddings {tuple(student.shape)} and teacher embeddings "
                f"{tuple(teacher.shape)} differ; the hidden width must not be pruned"
            )
        loss = student.new_zeros(())
        if self.cosine_weight:
            cosine = F.cosine_similarity(student, teacher, dim=-1)
            loss = loss + self.cosine_weight * (1.0 - cosine).mean()
        if self.mse_weight:
            loss = loss + self.mse_weight * F.mse_loss(student, teacher)
        return loss


def hidden_state_loss(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean over layers of the squared error of real (unpadded) token states.

    ``mean_l Σ_{b,t} mask_bt ‖s_lbt − t_lbt‖² / (Σ_{b,t} mask_bt · width)``; layers are paired
    in order (both models have the same depth and width after head/FFN pruning).
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(
            f"hidden-state distillation pairs layers in order: got {len(student)} student and "
            f"{len(teacher)} teacher states (pick the teacher's with layer_pairs)"
        )
    weights = attention_mask.unsqueeze(-1).to(student[0].dtype)
    count = weights.sum() * student[0].shape[-1]
    losses = [
        ((s - t).pow(2) * weights).sum() / count for s, t in zip(student, teacher, strict=True)
    ]
    return torch.stack(losses).mean()


#: The default schedule of :class:`EmbeddingDistillConfig`: one epoch of AdamW (weight decay
#: 0.01) at 1e-4, 32 sentences a step, warmed up over 5% of the steps, then decayed linearly.
#: Change one setting with ``dataclasses.replace(EMBEDDING_TRAIN, lr=1e-3)``.
EMBEDDING_TRAIN = TrainConfig(
    epochs=1,
    lr=1e-4,
    batch_size=32,
    optimizer="adamw",
    weight_decay=0.01,
    schedule="warmup-linear",
)


#: Precisions of the distillation's forward passes.
PRECISIONS = ("fp32", "bf16")
#: How the distillation's batches are drawn, indexed by ``group_by_length``.
BATCHINGS = ("random", "by-length")

#: What embedding distillation cannot apply: a label loss and image augmentation.
_NOT_READ = {"label_smoothing": 0.0, "augment": "none"}
#: Layout 1's schedule fields: each one's key in :class:`TrainConfig`.
_FLAT_SCHEDULE = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "seed": "seed"}


@dataclass(frozen=True, kw_only=True)
class EmbeddingDistillConfig(ConfigBase):
    """How a pruned sentence encoder is trained back towards the original.

    The loss is :class:`EmbeddingKDLoss` (``cosine_weight``, ``mse_weight``) plus
    ``hidden_weight`` × :func:`hidden_state_loss` over every layer's output; gradients are
    clipped to norm 1. Dropout is off while training: the target is a deterministic function
    (on all-MiniLM-L6-v2 this recovered slightly more per step than dropout 0.1).

    Attributes:
        train: the training schedule: epochs over the sentences (>= 1), sentences per step,
            optimiser, peak learning rate, schedule and shuffling seed; by default
            :data:`EMBEDDING_TRAIN`. Its ``label_smoothing`` and ``augment`` do not apply and
            must keep their defaults.
        max_length: token limit of the training sentences (longer ones are truncated).
        cosine_weight: weight of ``1 − cos`` between the embeddings.
        mse_weight: weight of the embeddings' mean squared error.
        hidden_weight: weight of the layer-by-layer hidden-state error (0 turns it off).
        freeze_embeddings: keep the token embedding table as the teacher left it. It holds
            about half of a small encoder's parameters, and a few thousand training sentences
            reach only a fraction of its rows.
        precision: ``fp32``, or ``bf16``: the forward passes (student and teacher) under
            bfloat16 autocast, the weights and the optimiser in float32. It pays where the
            hardware multiplies bfloat16 (CPUs with AMX or AVX-512 BF16, recent GPUs).
        group_by_length: draw each step's sentences from a pool of similar lengths (see
            :func:`epoch_order`), so a batch is padded to little more than its own sentences;
            the steps still come in random order. A random batch of prose sentences is padded
            to its longest, several times the length of a typical one.

    Example:
        >>> EmbeddingDistillConfig(train=replace(EMBEDDING_TRAIN, lr=1e-3), hidden_weight=1.0)
    """

    TAG = ("method", "embedding-kd")
    #: Layout 2 holds the schedule in ``train``; layout 1 wrote ``epochs``, ``batch_size``,
    #: ``lr`` and ``seed`` as fields of their own.
    VERSION = 2

    train: TrainConfig = field(default_factory=lambda: EMBEDDING_TRAIN)
    max_length: int = 128
    cosine_weight: float = 1.0
    mse_weight: float = 0.0
    hidden_weight: float = 0.0
    freeze_embeddings: bool = False
    precision: str = "fp32"
    group_by_length: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise ValueError("EmbeddingDistillConfig.train must be a slimkit.TrainConfig")
        if self.train.epochs < 1:
            raise ValueError(
                f"EmbeddingDistillConfig.train.epochs must be >= 1, got {self.train.epochs}"
            )
        for name, default in _NOT_READ.items():
            if getattr(self.train, name) != default:
                raise ValueError(
                    f"EmbeddingDistillConfig.train.{name} does not apply to embedding "
                    f"distillation; leave it {default!r}"
                )
        if self.max_length < 2:
            raise ValueError(
                f"EmbeddingDistillConfig.max_length must be >= 2, got {self.max_length}"
            )
        for name in ("cosine_weight", "mse_weight", "hidden_weight"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"EmbeddingDistillConfig.{name} must be >= 0, got {getattr(self, name)}"
                )
        if self.cosine_weight + self.mse_weight + self.hidden_weight == 0:
            raise ValueError("EmbeddingDistillConfig: at least one loss weight must be > 0")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"EmbeddingDistillConfig.precision must be one of {', '.join(PRECISIONS)}, "
                f"got {self.precision!r}"
            )

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Layout 1 → 2: ``epochs``, ``batch_size``, ``lr`` and ``seed`` into ``train``."""
        if version != 1:
            return super().upgrade(data, version)
        return nest(cls.__name__, data, "train", _FLAT_SCHEDULE)


def _silence_dropout(model: nn.Module) -> list[tuple[nn.Dropout, float]]:
    """Turn dropout off (the student regresses a deterministic teacher); the old rates."""
    found = [(m, m.p) for m in model.modules() if isinstance(m, nn.Dropout)]
    for module, _ in found:
        module.p = 0.0
    return found


def _outputs(
    encoder: SentenceEncoder, batch: TextBatch, hidden: bool
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    batch = {k: v.to(encoder.device) for k, v in batch.items()}
    out = encoder.backbone(**batch, output_hidden_states=hidden)
    embeddings = encoder.pool(out.last_hidden_state, batch["attention_mask"])
    if encoder.normalize:
        embeddings = F.normalize(embeddings, p=2, dim=-1)
    return embeddings, tuple(out.hidden_states[1:]) if hidden else ()


def distill_encoder(
    student: SentenceEncoder,
    teacher: SentenceEncoder,
    texts: Sequence[str],
    cfg: EmbeddingDistillConfig,
    *,
    progress: bool = True,
    max_seconds: float | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_seconds: float = 300.0,
) -> SentenceEncoder:
    """Train ``student`` (in place) to reproduce ``teacher``'s embeddings of ``texts``.

    The student carries ``slimkit_distill_report`` afterwards: steps, wall time, the mean loss
    of each epoch, and the steps it was resumed at.

    Args:
        student: the pruned encoder (same tokenizer and embedding width as the teacher).
        teacher: the original encoder; frozen, run in eval mode.
        texts: unlabeled training sentences.
        cfg: the recipe.
        progress: show a progress bar.
        max_seconds: stop early (keeping what was learnt) once this much wall time has passed
            (counted over every run of a resumed distillation).
        checkpoint: a folder to save the progress in every ``checkpoint_seconds`` and at the
            end (see :mod:`slimkit.text._checkpoint`). When it holds the progress of this same
            distillation (config, sentences, student's shapes), the run continues from there;
            a finished one returns the trained student without training. Else it starts over.
        checkpoint_seconds: wall time between two checkpoints.

    Example:
        >>> schedule = dataclasses.replace(EMBEDDING_TRAIN, epochs=2)
        >>> cfg = EmbeddingDistillConfig(train=schedule, hidden_weight=1.0)
        >>> distill_encoder(student, teacher, splits.train[:4000], cfg, checkpoint="ckpt")

    Raises:
        ValueError: if ``texts`` is empty or the embedding widths differ.
    """
    if isinstance(texts, str) or not texts:
        raise ValueError("distill_encoder() needs training sentences (a non-empty list)")
    if student.dim != teacher.dim:
        raise ValueError(
            f"the student's embeddings are {student.dim} wide and the teacher's {teacher.dim}: "
            "embedding distillation needs the same width (do not prune the hidden size)"
        )
    if checkpoint_seconds <= 0:
        raise ValueError(f"checkpoint_seconds must be > 0, got {checkpoint_seconds}")
    frozen = _freeze_embeddings(student) if cfg.freeze_embeddings else []
    steps = math.ceil(len(texts) / cfg.train.batch_size) * cfg.train.epochs
    trainer = _Trainer(student, teacher, cfg, steps)
    state = trainer.restore(texts, checkpoint)
    dropouts = _silence_dropout(student)
    bar = _bar(trainer.total, progress, state.steps)
    try:
        if not state.finished:
            trainer.run(texts, state, bar, max_seconds, checkpoint, checkpoint_seconds)
    finally:
        if bar is not None:
            bar.close()
        for module, rate in dropouts:
            module.p = rate
        for param in frozen:
            param.requires_grad_(True)
        student.eval()
    setattr(student, REPORT_ATTR, _report(cfg, texts, state, trainer.pairs))
    return student


def _report(
    cfg: EmbeddingDistillConfig, texts: Sequence[str], state: Progress, pairs: Sequence[int]
) -> dict[str, Any]:
    return {
        "config": cfg.to_dict(),
        "texts": len(texts),
        "epoch_loss": list(state.epoch_loss),
        "steps": state.steps,
        "seconds": round(state.seconds, 1),
        "stopped_early": state.stopped_early,
        "resumed_at": list(state.resumed_at),
        "layer_pairs": list(pairs),
    }


def _freeze_embeddings(student: SentenceEncoder) -> list[nn.Parameter]:
    """Stop the token embedding table's gradients; the parameters to unfreeze afterwards."""
    table: nn.Module = student.backbone.get_input_embeddings()  # type: ignore[operator]
    frozen = [p for p in table.parameters() if p.requires_grad]
    for param in frozen:
        param.requires_grad_(False)
    return frozen


class _Trainer:
    """``cfg.train``'s optimiser and schedule over ``total`` steps; one call of :meth:`run`."""

    def __init__(
        self,
        student: SentenceEncoder,
        teacher: SentenceEncoder,
        cfg: EmbeddingDistillConfig,
        total: int,
    ) -> None:
        self.student, self.teacher, self.cfg, self.total = student, teacher, cfg, total
        self.criterion = (
            EmbeddingKDLoss(cosine_weight=cfg.cosine_weight, mse_weight=cfg.mse_weight)
            if cfg.cosine_weight + cfg.mse_weight > 0
            else None
        )
        self.optimizer = make_optimizer(student, cfg.train)
        self.steps = 0
        self.length = min(cfg.max_length, student.max_length, teacher.max_length)
        self.pairs = layer_pairs(student, teacher) if cfg.hidden_weight > 0 else []

    def restore(self, texts: Sequence[str], checkpoint: str | os.PathLike[str] | None) -> Progress:
        """The progress to start from: the checkpoint's, when it is this distillation's
        (student and optimiser restored), else a fresh one."""
        key = progress_key(self.cfg.to_dict(), texts, self.total, self.student)
        state = None
        if checkpoint is not None:
            state = load_checkpoint(checkpoint, self.student, self.optimizer, key)
        if state is None:
            return Progress(key=key)
        if not state.finished:
            state.resumed_at.append(state.steps)
        self.steps = state.steps
        return state

    def step(self, texts: list[str]) -> float:
        batch = self.student.tokenize(texts, max_length=self.length)
        bf16 = self.cfg.precision == "bf16"
        with torch.autocast(self.student.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = _step(self.student, self.teacher, batch, self.cfg, self.criterion, self.pairs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.cfg.train, self.steps, self.total)
        self.optimizer.step()
        self.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def run(
        self,
        texts: Sequence[str],
        state: Progress,
        bar: Any,
        max_seconds: float | None,
        checkpoint: str | os.PathLike[str] | None,
        checkpoint_seconds: float,
    ) -> None:
        """Train from ``state`` to the end (updating it), checkpointing on the way."""
        schedule, size = self.cfg.train, self.cfg.train.batch_size
        self.teacher.eval()
        self.student.train()
        start = time.perf_counter() - state.seconds
        saved = time.perf_counter()
        batches = math.ceil(len(texts) / size)
        while state.epoch < schedule.epochs and not state.stopped_early:
            order = epoch_order(
                texts, size, schedule.seed * 1000 + state.epoch, self.cfg.group_by_length
            )
            for first in range(state.position * size, len(order), size):
                state.losses.append(self.step([texts[i] for i in order[first : first + size]]))
                state.steps, state.position = self.steps, state.position + 1
                state.seconds = time.perf_counter() - start
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{state.losses[-1]:.4f}")
                state.stopped_early = max_seconds is not None and state.seconds > max_seconds
                if state.stopped_early:
                    break
                if checkpoint is not None and time.perf_counter() - saved > checkpoint_seconds:
                    save_checkpoint(checkpoint, self.student, self.optimizer, state)
                    saved = time.perf_counter()
            state.epoch_loss.append(sum(state.losses) / max(len(state.losses), 1))
            state.losses = []
            if state.position >= batches:
                state.epoch, state.position = state.epoch + 1, 0
        state.finished = True
        if checkpoint is not None:
            save_checkpoint(checkpoint, self.student, self.optimizer, state)


#: Batches per pool that :func:`epoch_order` sorts by length.
LENGTH_POOL = 64


def epoch_order(texts: Sequence[str], size: int, seed: int, group_by_length: bool) -> list[int]:
    """The order of one epoch's sentences, cut into batches of ``size`` from the front.

    Shuffled with ``seed``. With ``group_by_length``, each run of ``LENGTH_POOL`` batches of
    the shuffled order is sorted by length (characters, which track tokens closely and need
    no tokenizer) and cut into batches, and the batches are shuffled; a short last batch stays
    last. The same arguments give the same order, which a resumed run relies on.
    """
    rng = random.Random(seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    if not group_by_length:
        return order
    pool = size * LENGTH_POOL
    ranked = [
        i
        for first in range(0, len(order), pool)
        for i in sorted(order[first : first + pool], key=lambda i: len(texts[i]))
    ]
    full = len(ranked) // size * size
    batches = [ranked[first : first + size] for first in range(0, full, size)]
    rng.shuffle(batches)
    return [i for batch in batches for i in batch] + ranked[full:]


def _step(
    student: SentenceEncoder,
    teacher: SentenceEncoder,
    batch: TextBatch,
    cfg: EmbeddingDistillConfig,
    criterion: EmbeddingKDLoss | None,
    pairs: Sequence[int] = (),
) -> torch.Tensor:
    hidden = cfg.hidden_weight > 0
    with torch.no_grad():
        t_emb, t_hidden = _outputs(teacher, batch, hidden)
    s_emb, s_hidden = _outputs(student, batch, hidden)
    loss = criterion(s_emb, t_emb) if criterion is not None else s_emb.new_zeros(())
    if hidden:
        mask = batch["attention_mask"].to(s_emb.device)
        targets = [t_hidden[i] for i in pairs] if pairs else t_hidden
        loss = loss + cfg.hidden_weight * hidden_state_loss(s_hidden, targets, mask)
    return loss


def layer_pairs(student: SentenceEncoder, teacher: SentenceEncoder) -> list[int]:
    """For each of the student's layers, the teacher layer whose output it learns (with
    ``hidden_weight``): the layer it was, where the student lost layers to
    :func:`~slimkit.text.prune_encoder` (its last layer always learns the teacher's last);
    evenly spaced layers for a shallower student of another origin; the same layer else."""
    depth, total = layer_count(student.backbone), layer_count(teacher.backbone)
    if depth == total:
        return list(range(total))
    dropped = prune_report(student).get("dropped_layers", {})
    if dropped.get("of") == total:
        kept = [i for i in range(total) if i not in set(dropped["removed"])]
    else:
        kept = [round((j + 1) * total / depth) - 1 for j in range(depth)]
    if len(kept) != depth:
        raise ValueError(
            f"the student has {depth} layers but its pruning report keeps {len(kept)} of the "
            f"teacher's {total}: distil it without hidden states (hidden_weight=0)"
        )
    return [*kept[:-1], total - 1]


def _bar(total: int, progress: bool, done: int = 0) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="distil", leave=False)


def distill_report(encoder: nn.Module) -> dict[str, Any]:
    """What :func:`distill_encoder` did (empty for an encoder it did not train)."""
    return dict(getattr(encoder, REPORT_ATTR, {}))
