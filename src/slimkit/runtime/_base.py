"""What a runtime is to slimkit: an engine that runs an exported ONNX graph on this machine.

One runtime per module, registered in :data:`RUNTIMES`; its name is then a valid
``--backend`` choice of ``compress`` and ``profile``, and ``--backend auto`` times it beside
the others. Each runtime is a maintained engine (ONNX Runtime, OpenVINO); slimkit only loads
the graph it exported and times it.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .._registry import Registry

#: The channel multiple of a runtime that declares none, and of eager PyTorch: SIMD channel
#: blocks of 8 (the multiple compress used everywhere before runtimes declared theirs).
DEFAULT_CHANNEL_MULTIPLE = 8


@dataclass(frozen=True)
class ChannelMultiples:
    """The channel counts a runtime's convolutions run best at: multiples of ``int8`` in an
    int8 graph, of ``fp32`` in a float one.

    A multiple is what the kernels want when a width between two multiples runs about as
    slowly as the next multiple up, or slower: keeping the next multiple then costs no time.
    ``benchmarks/channel_multiples.py`` measures it per runtime on this CPU.
    """

    int8: int = DEFAULT_CHANNEL_MULTIPLE
    fp32: int = DEFAULT_CHANNEL_MULTIPLE

    def __post_init__(self) -> None:
        for name in ("int8", "fp32"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ChannelMultiples.{name} must be an integer >= 1, got {value!r}")

    def of(self, int8: bool) -> int:
        """The multiple for an int8 graph (``int8=True``) or a float one."""
        return self.int8 if int8 else self.fp32


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """An engine that runs ONNX graphs on the CPU.

    Attributes:
        name: the ``--backend`` name.
        module: the Python package it needs (for :meth:`available`).
        extra: the pip extra that installs it (``pip install 'slimkit[<extra>]'``).
        load: ``(onnx_path, threads) -> nn.Module`` that runs the graph behind ``forward``.
        save: ``(onnx_path, directory) -> files`` writing the runtime's own deployable form
            beside the graph (ONNX Runtime: none, it reads the ``.onnx``).
        kernel_times: ``(onnx_path, batch, threads) -> [{"node", "op", "ms"}]``, the
            runtime's own profiler: milliseconds per run of every kernel it runs, each named
            after the ONNX node it came from (plus a suffix after ``_`` where it fused or
            reordered one).
        channel_multiples: the channel multiples its kernels want on this CPU
            (:class:`ChannelMultiples`); ``compress`` rounds widths to them by default.
    """

    name: str
    module: str
    extra: str
    load: Callable[[str | os.PathLike[str], int], nn.Module]
    save: Callable[[Path, Path], list[Path]]
    kernel_times: Callable[[Path, int, int], list[dict[str, Any]]]
    channel_multiples: ChannelMultiples = ChannelMultiples()

    def available(self) -> bool:
        """Whether its package is installed here."""
        return importlib.util.find_spec(self.module) is not None


#: Runtimes by ``--backend`` name.
RUNTIMES: Registry[Runtime] = Registry("runtime")


def register_runtime(runtime: Runtime) -> Runtime:
    """Add ``runtime`` to :data:`RUNTIMES` (its name becomes a ``--backend`` choice)."""
    RUNTIMES.register(runtime.name, runtime)
    return runtime


def available_runtimes() -> list[str]:
    """Names of the registered runtimes whose package is installed, sorted."""
    return [name for name in RUNTIMES.names() if RUNTIMES.get(name).available()]


def channel_multiple(runtimes: Sequence[str], *, int8: bool) -> int:
    """The channel multiple for a model that may deploy on any of ``runtimes``.

    The least common multiple of what each wants (with powers of two, the largest): then every
    width is one that each candidate runs at full speed. A smaller multiple would let the plan
    keep widths that the runtime wanting the larger one runs as slowly as the next multiple
    up, for fewer channels. No runtime (eager PyTorch): :data:`DEFAULT_CHANNEL_MULTIPLE`.

    Example:
        >>> channel_multiple(["onnxruntime", "openvino"], int8=True)
        8
    """
    multiples = [RUNTIMES.get(name).channel_multiples.of(int8) for name in runtimes]
    return math.lcm(*multiples) if multiples else DEFAULT_CHANNEL_MULTIPLE
