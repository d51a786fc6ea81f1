"""Gradual pruning with distillation between the steps: the recipe behind the MiniLM benchmark."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from ..models import SentenceEncoder
from ..prune import PerLayer
from ._distill import EmbeddingDistillConfig, distill_encoder, distill_report
from ._prune import EncoderPruneConfig, prune_encoder, prune_report

REPORT_ATTR = "slimkit_compress_report"


def step_config(cfg: EncoderPruneConfig, steps: int) -> EncoderPruneConfig:
    """The per-step config of a geometric schedule: ``steps`` equal relative cuts that leave
    ``1 - fraction`` of the units in the end (12 heads, 0.5, 2 steps: 12 → 8 → 6)."""

    def share(fraction: float) -> float:
        return 1.0 - (1.0 - fraction) ** (1.0 / steps)

    scope = cfg.scope
    if isinstance(scope, PerLayer):
        scope = PerLayer({k: share(v) for k, v in scope.overrides.items()})
    return dataclasses.replace(cfg, heads=share(cfg.heads), ffn=share(cfg.ffn), scope=scope)


def compress_encoder(
    teacher: SentenceEncoder,
    prune: EncoderPruneConfig,
    distill: EmbeddingDistillConfig,
    texts: Sequence[str],
    *,
    steps: int = 1,
    progress: bool = True,
) -> SentenceEncoder:
    """Prune ``teacher`` in ``steps`` steps, distilling its embeddings back after each one.

    The training sentences are cut into ``steps`` consecutive slices, one per step (each
    sentence is trained on once per epoch of ``distill``); unit importance is scored on the
    first sentences of each slice. Removing units gradually lets the remaining ones adapt before
    the next cut, which recovers more than one cut followed by the same amount of training.

    Args:
        teacher: the original encoder (not modified).
        prune: the final fractions of heads and FFN neurons to remove, and how to choose them.
        distill: the distillation recipe of every step.
        texts: unlabeled training sentences.
        steps: pruning steps (1 = one-shot pruning, then distillation).
        progress: show progress bars.

    Returns:
        The compressed encoder, carrying ``slimkit_compress_report`` (per step: widths,
        importance and distillation time, losses).

    Example:
        >>> student = compress_encoder(
        ...     teacher,
        ...     EncoderPruneConfig(heads=0.5, ffn=0.75, scope=Global()),
        ...     EmbeddingDistillConfig(train=replace(EMBEDDING_TRAIN, lr=1e-3)),
        ...     splits.train[:8000],
        ...     steps=2,
        ... )

    Raises:
        ValueError: if ``steps`` < 1 or there are fewer sentences than steps.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if len(texts) < steps:
        raise ValueError(f"{len(texts)} sentences cannot be split into {steps} steps")
    per_step = step_config(prune, steps)
    size = len(texts) // steps
    student, records = teacher, []
    start = time.perf_counter()
    for index in range(steps):
        chunk = list(texts[index * size : (index + 1) * size])
        student = prune_encoder(student, per_step, chunk)
        pruned = prune_report(student)
        distill_encoder(student, teacher, chunk, distill, progress=progress)
        records.append(_step_record(pruned, distill_report(student)))
    report = {
        "prune": prune.to_dict(),
        "distill": distill.to_dict(),
        "steps": records,
        "layers": records[-1]["layers"],
        "params": {"before": _count(teacher), "after": _count(student)},
        "seconds": round(time.perf_counter() - start, 1),
    }
    setattr(student, REPORT_ATTR, report)
    return student


def _count(encoder: SentenceEncoder) -> int:
    return sum(p.numel() for p in encoder.parameters())


def _step_record(pruned: dict[str, Any], distilled: dict[str, Any]) -> dict[str, Any]:
    return {
        "layers": pruned["layers"],
        "importance_seconds": pruned["importance_seconds"],
        "distill_seconds": distilled["seconds"],
        "distill_steps": distilled["steps"],
        "texts": distilled["texts"],
        "epoch_loss": distilled["epoch_loss"],
    }


def compress_report(encoder: Any) -> dict[str, Any]:
    """What :func:`compress_encoder` did (empty for an encoder it did not make)."""
    return dict(getattr(encoder, REPORT_ATTR, {}))
