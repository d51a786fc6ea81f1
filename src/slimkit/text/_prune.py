"""Structured pruning of a sentence encoder: whole layers, attention heads and FFN neurons.

Layers go first (:mod:`._layers`: the ones whose absence moves the embeddings least); then
the backbone is traced into a :class:`~slimkit.graph.DependencyGraph` (which knows that a head
is ``head_size`` coupled channels of query, key, value and the output projection, and that the
hidden width feeds the output and stays); units are scored on the user's sentences by a
:data:`TEXT_IMPORTANCE` criterion; the lowest are removed from a copy, which is re-traced and
checked against the plan before it is returned.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._attrs import PRUNE_REPORT_ATTR as REPORT_ATTR
from .._config import ConfigBase
from ..errors import PruningTargetError, UnsupportedOpError
from ..graph import DependencyGraph, Group, apply_plan
from ..models import SentenceEncoder, layer_widths
from ..prune import Global, PerLayer
from ..prune._select import lowest_units, round_count, scope_ratio, spend_budget
from ._importance import TEXT_IMPORTANCE, TextBatch
from ._layers import choose_layers, keep_layers, layer_count

HEADS, FFN = "heads", "ffn"


@dataclass(frozen=True, kw_only=True)
class EncoderPruneConfig(ConfigBase):
    """Remove whole layers, attention heads and FFN neurons from a transformer sentence encoder.

    Attributes:
        heads: fraction of the attention heads removed, in [0, 1).
        ffn: fraction of the feed-forward (intermediate) neurons removed, in [0, 1).
        layers: fraction of the transformer layers removed, in [0, 1) (rounded to whole
            layers; at least one stays): chosen greedily on the calibration sentences, each
            step removing the layer whose absence keeps the embeddings closest to the
            original's. Heads and neurons are then pruned in the layers that remain.
        importance: a name in :data:`TEXT_IMPORTANCE`: ``fisher`` (curvature of the
            embedding-distillation loss, the original model as teacher), ``activation`` or
            ``l2``.
        scope: :class:`~slimkit.prune.PerLayer` (the same fractions in every layer, with
            overrides by module pattern, e.g. ``{"encoder.layer.0.*": 0.25}``) or
            :class:`~slimkit.prune.Global` (units ranked across layers, so layers end up with
            different widths).
        round_to: keep FFN widths multiples of this (e.g. 8 or 16 for SIMD kernels).
        max_ratio: the largest fraction of one layer's heads or neurons that ``Global`` may
            remove (every layer keeps at least one head and one neuron).
        calib_texts: sentences read by data-driven criteria.
        max_length: token limit of the calibration sentences.
    """

    TAG = ("method", "encoder-heads-ffn")

    heads: float = 0.5
    ffn: float = 0.5
    layers: float = 0.0
    importance: str = "fisher"
    scope: Global | PerLayer = field(default_factory=PerLayer)
    round_to: int = 1
    max_ratio: float = 0.9
    calib_texts: int = 256
    max_length: int = 128

    def __post_init__(self) -> None:
        for name in (HEADS, FFN, "layers"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"EncoderPruneConfig.{name} must be in [0, 1) (0.5 = remove half), got {value}"
                )
        if self.importance not in TEXT_IMPORTANCE:
            raise ValueError(
                f"EncoderPruneConfig.importance must be one of {TEXT_IMPORTANCE.names()}, "
                f"got {self.importance!r}"
            )
        if not isinstance(self.scope, Global | PerLayer):
            raise ValueError("EncoderPruneConfig.scope must be Global() or PerLayer(...)")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise ValueError(
                f"EncoderPruneConfig.round_to must be an integer >= 1, got {self.round_to}"
            )
        if not 0.0 < self.max_ratio < 1.0:
            raise ValueError(
                f"EncoderPruneConfig.max_ratio must be in (0, 1), got {self.max_ratio}"
            )
        if self.calib_texts < 1:
            raise ValueError(f"EncoderPruneConfig.calib_texts must be >= 1, got {self.calib_texts}")
        if self.max_length < 2:
            raise ValueError(f"EncoderPruneConfig.max_length must be >= 2, got {self.max_length}")


def text_batches(
    encoder: SentenceEncoder, texts: Sequence[str], *, batch_size: int, max_length: int
) -> list[TextBatch]:
    """Tokenized batches of ``texts`` (padded to the longest of each batch)."""
    length = min(max_length, encoder.max_length)
    return [
        encoder.tokenize(texts[i : i + batch_size], max_length=length)
        for i in range(0, len(texts), batch_size)
    ]


def _kind(group: Group) -> str:
    """Heads are units of several channels (head_size); FFN neurons are single channels."""
    return HEADS if group.unit_size > 1 else FFN


def _round_keep(keep: int, total: int, round_to: int) -> int:
    if round_to == 1 or total < round_to:
        return keep
    return round_count(keep, round_to, total)


def _keep_counts(
    graph: DependencyGraph, scores: list[torch.Tensor], cfg: EncoderPruneConfig
) -> dict[int, int]:
    """Units to keep per group."""
    keep: dict[int, int] = {}
    groups = [g for g in graph.groups if g.prunable]
    if isinstance(cfg.scope, PerLayer):
        for g in groups:
            ratio = scope_ratio(g, cfg.scope, getattr(cfg, _kind(g)))
            keep[g.index] = max(len(g.units) - round(ratio * len(g.units)), 1)
    else:
        for kind in (HEADS, FFN):
            members = [g for g in groups if _kind(g) == kind]
            ranked = sorted((float(s), g.index) for g in members for s in scores[g.index].tolist())
            budget = round(getattr(cfg, kind) * len(ranked))
            floor = {
                g.index: max(1, math.ceil((1 - cfg.max_ratio) * len(g.units))) for g in members
            }
            caps = {g.index: len(g.units) - floor[g.index] for g in members}
            lost = spend_budget((index for _, index in ranked), budget, caps)
            keep.update({g.index: len(g.units) - lost[g.index] for g in members})
    for g in groups:
        if _kind(g) == FFN:
            keep[g.index] = _round_keep(keep[g.index], len(g.units), cfg.round_to)
    return keep


def select_removed(
    graph: DependencyGraph, scores: list[torch.Tensor], cfg: EncoderPruneConfig
) -> list[int]:
    """Unit labels to remove: the lowest-scoring ones of each group, as many as ``cfg`` says."""
    removed: list[int] = []
    for index, count in _keep_counts(graph, scores, cfg).items():
        group = graph.groups[index]
        drop = len(group.units) - count
        removed.extend(lowest_units(group.units.tolist(), scores[index].tolist(), drop))
    return removed


def prune_encoder(
    encoder: SentenceEncoder,
    cfg: EncoderPruneConfig,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
) -> SentenceEncoder:
    """Prune heads and FFN neurons of a copy of ``encoder``, scored on ``texts``.

    The result carries ``slimkit_prune_report`` (widths per layer, parameter counts, the
    config, the criterion's time). Save it with :func:`slimkit.models.save_hf`.

    Args:
        encoder: e.g. from :func:`slimkit.models.load_hf`; it is not modified.
        cfg: how much to remove and how to choose.
        texts: calibration sentences (the first ``cfg.calib_texts`` are read).
        batch_size: sentences per calibration batch.

    Example:
        >>> teacher = load_hf("all-MiniLM-L6-v2")
        >>> cfg = EncoderPruneConfig(heads=0.5, ffn=0.75, importance="fisher")
        >>> student = prune_encoder(teacher, cfg, splits.train)

    Raises:
        PruningTargetError: if the model has no prunable heads or neurons.
        UnsupportedOpError: if the pruned model does not compute what the plan says.
        ValueError: if ``texts`` is empty.
    """
    if isinstance(texts, str) or not texts:
        raise ValueError("prune_encoder() needs calibration sentences (a non-empty list)")
    original = encoder
    calib = list(texts[: cfg.calib_texts])
    batches = text_batches(encoder, calib, batch_size=batch_size, max_length=cfg.max_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short example is enough to trace the graph
        example = encoder.tokenize(calib[:2], max_length=min(16, encoder.max_length))
    example = {name: value.to(encoder.device) for name, value in example.items()}
    start = time.perf_counter()
    encoder, dropped = _drop_layers(encoder, cfg, batches)
    dropping_s = time.perf_counter() - start
    backbone = encoder.backbone
    graph = DependencyGraph.build(backbone, example)
    if not any(g.prunable for g in graph.groups):
        raise PruningTargetError(
            "no attention heads or FFN neurons of this encoder can be pruned",
            report=graph.summary(),
        )
    start = time.perf_counter()
    scores = TEXT_IMPORTANCE.get(cfg.importance)()(graph, encoder, batches)
    scoring_s = time.perf_counter() - start
    removed = select_removed(graph, scores, cfg)
    pruned = copy.deepcopy(encoder)
    heads_before = int(encoder.config.num_attention_heads)
    apply_plan(pruned.backbone, graph.plan(removed))
    # BERT's config derives the head size as hidden_size / num_attention_heads: keep the
    # original count there; the modules hold the real widths and save_hf writes them.
    pruned.config.num_attention_heads = heads_before
    bad = graph.verify(pruned.backbone, removed)
    if bad is not None:
        record = graph.ctx.records[min(bad, len(graph.ctx.records) - 1)]
        raise UnsupportedOpError(
            f"the pruned encoder diverged from the plan at op {record.name!r} in {record.where}; "
            "register an op rule for it (slimkit.graph.register_op_rule)"
        )
    report = _report(original, pruned, cfg, graph, scoring_s)
    if dropped:
        report["dropped_layers"] = {**dropped, "seconds": round(dropping_s, 2)}
    setattr(pruned, REPORT_ATTR, report)
    return pruned.eval()


def _drop_layers(
    encoder: SentenceEncoder, cfg: EncoderPruneConfig, batches: list[TextBatch]
) -> tuple[SentenceEncoder, dict[str, Any]]:
    """``encoder`` with ``cfg.layers`` of its layers removed (a copy, when any are), and
    what was removed: original indices and the cosine after each removal."""
    total = layer_count(encoder.backbone)
    drop = min(round(cfg.layers * total), total - 1)
    if drop == 0:
        return encoder, {}
    removed, steps = choose_layers(encoder, drop, batches)
    copy_ = copy.deepcopy(encoder)
    keep_layers(copy_, [i for i in range(total) if i not in removed])
    return copy_, {"removed": removed, "of": total, "steps": steps}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _report(
    original: SentenceEncoder,
    pruned: SentenceEncoder,
    cfg: EncoderPruneConfig,
    graph: DependencyGraph,
    scoring_s: float,
) -> dict[str, Any]:
    return {
        "config": cfg.to_dict(),
        "layers": layer_widths(pruned.backbone),
        "params": {"before": _params(original), "after": _params(pruned)},
        "importance_seconds": round(scoring_s, 2),
        "left_unpruned": [
            {"layers": list(g.sources) or g.modules[:3], "reasons": list(g.reasons)}
            for g in graph.groups
            if g.blocked_units
        ],
    }


def prune_report(encoder: nn.Module) -> dict[str, Any]:
    """What :func:`prune_encoder` removed (empty for an unpruned encoder)."""
    return dict(getattr(encoder, REPORT_ATTR, {}))


def prune_handler(model: nn.Module, cfg: EncoderPruneConfig, **options: Any) -> nn.Module:
    """``slimkit.prune(encoder, EncoderPruneConfig(...), texts=[...])``.

    ``data=`` may be a :class:`~slimkit.data.TextSplits` (its training sentences are read)
    instead of ``texts=``.
    """
    if not isinstance(model, SentenceEncoder):
        raise TypeError(
            "EncoderPruneConfig prunes a SentenceEncoder (slimkit.models.load_hf(path)), got "
            f"{type(model).__name__}"
        )
    texts = options.get("texts")
    data = options.get("data")
    if texts is None and data is not None and hasattr(data, "train"):
        texts = list(data.train)
    if texts is None:
        raise ValueError("pruning an encoder needs texts=[sentences] or data=TextSplits")
    pruned = prune_encoder(model, cfg, texts)
    if options.get("inplace"):
        model.__dict__.update(pruned.__dict__)
        return model
    return pruned
