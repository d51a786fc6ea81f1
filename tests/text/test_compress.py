"""Gradual pruning with distillation between the steps."""

from __future__ import annotations

import dataclasses

import pytest

from slimkit.models import SentenceEncoder, layer_widths
from slimkit.prune import Global, PerLayer
from slimkit.testing import TINY_SENTENCES
from slimkit.text import (
    EMBEDDING_TRAIN,
    EmbeddingDistillConfig,
    EncoderPruneConfig,
    compress_encoder,
    compress_report,
    step_config,
)


def test_geometric_steps_end_at_the_asked_fractions() -> None:
    cfg = EncoderPruneConfig(heads=0.5, ffn=0.75, scope=PerLayer({"encoder.layer.0.*": 0.75}))
    step = step_config(cfg, 2)
    assert (1 - step.heads) ** 2 == pytest.approx(0.5)
    assert (1 - step.ffn) ** 2 == pytest.approx(0.25)
    assert isinstance(step.scope, PerLayer)
    assert (1 - step.scope.overrides["encoder.layer.0.*"]) ** 2 == pytest.approx(0.25)
    assert step_config(cfg, 1) == cfg


def test_two_steps_prune_twice_and_distil_after_each(tiny: SentenceEncoder) -> None:
    texts = list(TINY_SENTENCES)
    prune = EncoderPruneConfig(heads=0.5, ffn=0.75, importance="l2", scope=Global())
    distill = EmbeddingDistillConfig(train=dataclasses.replace(EMBEDDING_TRAIN, batch_size=3))
    student = compress_encoder(tiny, prune, distill, texts, steps=2, progress=False)
    report = compress_report(student)
    assert [sum(w["heads"] for w in step["layers"]) for step in report["steps"]] == [6, 4]
    assert sum(w["intermediate_size"] for w in layer_widths(student.backbone)) == 32
    assert [step["distill_steps"] for step in report["steps"]] == [2, 2]  # 6 sentences each
    assert report["params"]["after"] < report["params"]["before"]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        compress_encoder(tiny, prune, distill, texts, steps=0)
