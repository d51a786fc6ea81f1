"""What ``compress_sentence_encoder`` searches and how it decides: the candidates, their
predicted cost, the agreement budget and the goal.

A candidate is an :class:`~slimkit.text.EncoderPruneConfig` (fractions of layers, heads and
FFN neurons to remove). Candidates are tried from the largest predicted saving to the smallest,
so the first one that holds the budget is the cheapest one expected to hold it; the prediction
is arithmetic on the encoder's widths (:func:`predicted_fraction`), the decision is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from .._checks import check_int, check_number
from .._config import ConfigBase
from .._registry import Registry
from ..models import SentenceEncoder, layer_widths
from ._distill import EMBEDDING_TRAIN, EmbeddingDistillConfig
from ._prune import EncoderPruneConfig
from ._records import TEXT_RUNTIMES, CandidateRecord, FormResult

#: Neighbours compared by the top-k overlap; the held-out sets need more sentences than this.
TOP_K = 10


def candidate_label(cfg: EncoderPruneConfig) -> str:
    """``L0.50-H0.25-F0.25``: the fractions of layers, heads and FFN neurons removed."""
    return f"L{cfg.layers:.2f}-H{cfg.heads:.2f}-F{cfg.ffn:.2f}"


def grid(
    layers: Sequence[float], widths: Sequence[float], *, importance: str = "fisher"
) -> tuple[EncoderPruneConfig, ...]:
    """Every ``layers`` fraction with every ``widths`` fraction (heads and FFN alike), the
    unpruned combination left out (the baseline measures the unpruned encoder already)."""
    return tuple(
        EncoderPruneConfig(layers=lay, heads=w, ffn=w, importance=importance)
        for lay in layers
        for w in widths
        if lay or w
    )


#: The default search: layers ∈ {1/2, 1/3, 0} × heads = FFN ∈ {1/2, 1/4, 0}, 8 candidates.
DEFAULT_CANDIDATES = grid((1 / 2, 1 / 3, 0.0), (1 / 2, 1 / 4, 0.0))


def parse_candidates(
    text: str, base: EncoderPruneConfig | None = None
) -> tuple[EncoderPruneConfig, ...]:
    """Candidates from ``"0.5:0.5:0.5,0.33:0.25:0.25"`` (layers:heads:ffn, comma-separated);
    other settings from ``base`` (default: :class:`EncoderPruneConfig`'s, fisher importance).

    Raises:
        ValueError: naming the item that is not three fractions.
    """
    base = base or EncoderPruneConfig(heads=0.0, ffn=0.0)
    found = []
    for item in text.split(","):
        parts = item.strip().split(":")
        try:
            layers, heads, ffn = (float(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"--candidates takes layers:heads:ffn fractions separated by commas, e.g. "
                f"0.5:0.5:0.5,0.33:0.25:0.25; got {item.strip()!r}"
            ) from None
        found.append(replace(base, layers=layers, heads=heads, ffn=ffn))
    return tuple(found)


@dataclass(frozen=True)
class AgreementBudget:
    """How closely the compressed encoder must agree with the original on held-out sentences.

    Attributes:
        min_cosine: the least mean cosine between the two embeddings of a sentence.
        min_overlap: the least top-10 neighbour overlap (None: not checked).
    """

    min_cosine: float
    min_overlap: float | None = None

    def holds(self, form: FormResult) -> bool:
        """Whether a measured form agrees closely enough."""
        cosine_ok = form.mean_cosine >= self.min_cosine
        return cosine_ok and (self.min_overlap is None or form.top10_overlap >= self.min_overlap)


@dataclass(frozen=True)
class Goal:
    """What the search minimises within the budget.

    Attributes:
        name: the ``--goal`` value.
        predicted: what orders the candidates before they are measured: ``macs`` (per
            sentence, at the measured sequence length) or ``params``.
        cost: the measured cost of a deployed form (lower is better).
    """

    name: str
    predicted: str
    cost: Callable[[FormResult], float]


#: Goals by name: ``latency`` (batch-32 time relative to the original's fp32 ONNX Runtime
#: graph, timed interleaved in the same rounds) and ``size`` (bytes of the deployed graph).
TEXT_GOALS: Registry[Goal] = Registry("sentence-encoder goal")
TEXT_GOALS.register("latency", Goal("latency", "macs", lambda form: form.relative_b32))
TEXT_GOALS.register("size", Goal("size", "params", lambda form: float(form.bytes)))


def predicted_fraction(
    encoder: SentenceEncoder, cfg: EncoderPruneConfig, *, goal: str, length: int
) -> float:
    """The fraction of the encoder's MACs per sentence (``goal`` predicting ``macs``) or of
    its parameters (``params``) that pruning by ``cfg`` is expected to keep.

    Per layer, MACs per token are ``4·H·A`` (query, key, value, output projections of ``A``
    attention channels) ``+ 2·T·A`` (scores and context over ``T`` tokens) ``+ 2·H·F`` (FFN of
    width ``F``); parameters are ``4·H·A + 2·H·F`` per layer plus the embedding tables, which
    pruning keeps. Heads and neurons shrink every layer by the candidate's fractions; dropped
    layers are assumed average ones.
    """
    widths = layer_widths(encoder.backbone)
    hidden, config = encoder.dim, encoder.config
    kind = TEXT_GOALS.get(goal).predicted

    def layer(attention: float, ffn: float) -> float:
        if kind == "macs":
            return 4 * hidden * attention + 2 * length * attention + 2 * hidden * ffn
        return 4 * hidden * attention + 2 * hidden * ffn

    full = [layer(w["heads"] * w["head_size"], w["intermediate_size"]) for w in widths]
    kept = [
        layer(
            w["head_size"] * (w["heads"] - round(cfg.heads * w["heads"])),
            w["intermediate_size"] * (1 - cfg.ffn),
        )
        for w in widths
    ]
    layers = len(widths)
    share = (layers - min(round(cfg.layers * layers), layers - 1)) / layers
    fixed = 0.0
    if kind == "params":
        positions = int(getattr(config, "max_position_embeddings", 0) or 0)
        fixed = float(hidden * (int(getattr(config, "vocab_size", 0) or 0) + positions))
    return (fixed + share * sum(kept)) / (fixed + sum(full))


def ordered(
    encoder: SentenceEncoder, candidates: Sequence[EncoderPruneConfig], *, goal: str, length: int
) -> list[tuple[EncoderPruneConfig, float]]:
    """``candidates`` with their predicted fractions, the smallest fraction (the largest
    predicted saving) first; ties keep the given order."""
    scored = [(c, predicted_fraction(encoder, c, goal=goal, length=length)) for c in candidates]
    return sorted(scored, key=lambda pair: pair[1])


def choose(
    records: Sequence[CandidateRecord], budget: AgreementBudget, goal: str
) -> tuple[CandidateRecord, FormResult] | None:
    """The cheapest measured form (by the goal's cost) that holds the budget, and its
    candidate; None when none does."""
    cost = TEXT_GOALS.get(goal).cost
    within = [(r, f) for r in records for f in r.forms if budget.holds(f)]
    return min(within, key=lambda pair: cost(pair[1])) if within else None


def _default_distill() -> EmbeddingDistillConfig:
    # Measured on all-MiniLM-L6-v2 and the documentation corpus (docs/text.md): the learning
    # rate, the hidden-state term, and batches by length (as close per step, faster per step).
    return EmbeddingDistillConfig(
        train=replace(EMBEDDING_TRAIN, lr=2e-4),
        freeze_embeddings=True,
        hidden_weight=1.0,
        group_by_length=True,
    )


@dataclass(frozen=True, kw_only=True)
class TextMeasureConfig(ConfigBase):
    """How agreement and latency are measured.

    Attributes:
        threads: CPU threads of PyTorch and ONNX Runtime while timing and embedding (None:
            PyTorch's current setting, recorded when the run starts).
        max_length: tokens per sentence; latency pads every sentence to this many (capped at
            the encoder's own limit).
        rounds: interleaved rounds of timing; each runner's time is the median.
    """

    threads: int | None = None
    max_length: int = 128
    rounds: int = 15

    def __post_init__(self) -> None:
        if self.threads is not None:
            check_int("TextMeasureConfig.threads", self.threads, minimum=1)
        check_int("TextMeasureConfig.max_length", self.max_length, minimum=2)
        check_int("TextMeasureConfig.rounds", self.rounds, minimum=1)


@dataclass(frozen=True, kw_only=True)
class EncoderCompressConfig(ConfigBase):
    """A sentence encoder compressed within an agreement budget: what
    :func:`~slimkit.text.compress_sentence_encoder` does.

    Attributes:
        min_cosine: the budget: the least mean cosine, in (0, 1), between the compressed and
            the original embedding of a validation sentence.
        min_overlap: also the least top-10 neighbour overlap, in (0, 1] (None: not checked).
        goal: a name in :data:`TEXT_GOALS`: ``latency`` or ``size``.
        candidates: the prune configs tried, reordered by predicted saving (see
            :func:`ordered`); by default :data:`DEFAULT_CANDIDATES`.
        distill: how each pruned candidate is distilled back (default: lr 2e-4, token
            embeddings frozen, each layer's hidden states as well as the embeddings).
        distill_steps: optimiser steps per candidate (None: ``distill.train.epochs`` over the
            training sentences).
        max_seconds: stop a candidate's distillation after this much wall time (None: no
            limit).
        quantize: also try each candidate in int8 (ONNX Runtime dynamic int8; NNCF's static
            int8 on OpenVINO).
        backend: where the result may run: ``auto`` (ONNX Runtime, and OpenVINO when it is
            installed: every candidate is measured on each and the cheapest form within the
            budget wins), ``onnxruntime`` or ``openvino``.
        measure: threads, sequence length and timing rounds.

    Example:
        >>> cfg = EncoderCompressConfig(min_cosine=0.97, distill_steps=2000, max_seconds=600)
    """

    TAG = ("task", "sentence-embedding")

    min_cosine: float = 0.97
    min_overlap: float | None = None
    goal: str = "latency"
    candidates: tuple[EncoderPruneConfig, ...] = DEFAULT_CANDIDATES
    distill: EmbeddingDistillConfig = field(default_factory=_default_distill)
    distill_steps: int | None = None
    max_seconds: float | None = None
    quantize: bool = True
    backend: str = "auto"
    measure: TextMeasureConfig = field(default_factory=TextMeasureConfig)

    def __post_init__(self) -> None:
        check_number("EncoderCompressConfig.min_cosine", self.min_cosine)
        if not 0.0 < self.min_cosine < 1.0:
            raise ValueError(
                f"EncoderCompressConfig.min_cosine must be in (0, 1) (e.g. 0.97), got "
                f"{self.min_cosine}"
            )
        if self.min_overlap is not None:
            check_number("EncoderCompressConfig.min_overlap", self.min_overlap)
            if not 0.0 < self.min_overlap <= 1.0:
                raise ValueError(
                    f"EncoderCompressConfig.min_overlap must be in (0, 1] (e.g. 0.8), got "
                    f"{self.min_overlap}"
                )
        if self.goal not in TEXT_GOALS:
            raise ValueError(
                f"EncoderCompressConfig.goal must be one of {TEXT_GOALS.names()}, got {self.goal!r}"
            )
        if self.backend not in ("auto", *TEXT_RUNTIMES):
            raise ValueError(
                f"EncoderCompressConfig.backend must be one of {['auto', *TEXT_RUNTIMES]}, got "
                f"{self.backend!r}"
            )
        self._check_candidates()
        if self.distill_steps is not None:
            check_int("EncoderCompressConfig.distill_steps", self.distill_steps, minimum=1)
        if self.max_seconds is not None:
            check_number("EncoderCompressConfig.max_seconds", self.max_seconds, positive=True)

    def _check_candidates(self) -> None:
        if not self.candidates or not all(
            isinstance(c, EncoderPruneConfig) for c in self.candidates
        ):
            raise ValueError(
                "EncoderCompressConfig.candidates must be a non-empty tuple of EncoderPruneConfig"
            )
        for c in self.candidates:
            if not (c.layers or c.heads or c.ffn):
                raise ValueError(
                    "EncoderCompressConfig.candidates holds an unpruned candidate (0:0:0); the "
                    "unpruned encoder is always measured: leave it out"
                )
        labels = [candidate_label(c) for c in self.candidates]
        if len(set(labels)) != len(labels):
            raise ValueError(f"EncoderCompressConfig.candidates repeats one: {labels}")

    @property
    def budget(self) -> AgreementBudget:
        """The agreement budget every decision reads."""
        return AgreementBudget(self.min_cosine, self.min_overlap)
