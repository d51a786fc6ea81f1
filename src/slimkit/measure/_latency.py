"""CPU/GPU latency: warm-up, then the median of timed repeats at a fixed thread count."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import torch


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)``, restoring the previous count."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_callable(
    fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10, min_seconds: float = 0.0
) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then time each of at least ``repeats`` calls.

    Returns the per-call times in milliseconds. ``min_seconds`` extends the number of calls
    for fast functions so noise averages out.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < min_seconds:
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


@torch.no_grad()
def measure_latency(
    model: torch.nn.Module,
    example_input: torch.Tensor,
    *,
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 10,
    min_seconds: float = 0.3,
) -> float:
    """Median wall time in milliseconds of one eager forward pass on ``example_input``."""
    model.eval()
    sync: Callable[[], None] = torch.cuda.synchronize if example_input.is_cuda else (lambda: None)

    def step() -> None:
        model(example_input)
        sync()

    with fixed_threads(threads):
        times = time_callable(step, warmup=warmup, repeats=repeats, min_seconds=min_seconds)
    return statistics.median(times)


def interleaved_latency(
    runners: Sequence[Callable[[torch.Tensor], object]], x: torch.Tensor, rounds: int = 15
) -> list[float]:
    """Median milliseconds per call of each runner, timed interleaved (one call each per round).

    Measured alone at different moments, latencies on a shared machine drift; interleaving
    gives every runner the same conditions, so their ratios are fair.

    Example:
        >>> int8_ms, fp32_ms = interleaved_latency([int8_session, fp32_session], batch)
    """
    times: list[list[float]] = [[] for _ in runners]
    with torch.no_grad():
        for runner in runners:
            runner(x)
        for _ in range(rounds):
            for index, runner in enumerate(runners):
                start = time.perf_counter()
                runner(x)
                times[index].append((time.perf_counter() - start) * 1000.0)
    return [statistics.median(samples) for samples in times]
