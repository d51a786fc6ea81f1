"""Timing sentence encoders the way a deployment runs them: fixed-length batches (every
sentence padded to the measured length), a fixed thread count, runners interleaved round by
round (:func:`slimkit.measure.interleaved_latency`) so that they share the machine's
conditions, the median of the rounds. Tokenization is not timed."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import torch

from ..measure import fixed_threads, interleaved_latency
from ..models import SentenceEncoder

#: ``(input_ids, attention_mask) → embeddings``: an eager encoder or an :class:`OrtEncoder`.
Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Batch sizes of the latency table.
BATCHES = (1, 32)
#: The batch size candidates are compared at.
SEARCH_BATCH = 32


def padded_batch(
    encoder: SentenceEncoder, texts: Sequence[str], size: int, length: int
) -> dict[str, torch.Tensor]:
    """``size`` sentences (``texts`` repeated as needed), each padded or cut to ``length``
    tokens."""
    chosen = [texts[i % len(texts)] for i in range(size)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cutting long sentences is intended here
        return encoder.tokenize(chosen, max_length=length, pad_to_max=True)


def time_batch(
    runners: Mapping[str, Runner], batch: dict[str, torch.Tensor], *, rounds: int, threads: int
) -> dict[str, float]:
    """Median milliseconds per call of each runner on ``batch``, timed interleaved."""
    mask = batch["attention_mask"]

    def bind(runner: Runner) -> Callable[[torch.Tensor], object]:
        return lambda ids: runner(ids, mask)

    with fixed_threads(threads):
        times = interleaved_latency([bind(r) for r in runners.values()], batch["input_ids"], rounds)
    return dict(zip(runners, times, strict=True))


def latency_table(
    runners: Mapping[str, Runner],
    encoder: SentenceEncoder,
    texts: Sequence[str],
    *,
    length: int,
    rounds: int,
    threads: int,
    batches: Sequence[int] = BATCHES,
) -> dict[str, dict[str, float]]:
    """``{runner: {"b1": ms, "b32": ms}}``: each batch size timed interleaved across runners."""
    table: dict[str, dict[str, float]] = {name: {} for name in runners}
    for size in batches:
        batch = padded_batch(encoder, texts, size, length)
        for name, ms in time_batch(runners, batch, rounds=rounds, threads=threads).items():
            table[name][f"b{size}"] = ms
    return table


def eager(encoder: SentenceEncoder) -> Runner:
    """An eager PyTorch encoder as a runner (in eval mode)."""
    encoder.eval()
    return lambda ids, mask: encoder(input_ids=ids, attention_mask=mask)
