"""Compact encodings of sparse tensors: a zero pattern (bitmask or index gaps, zlib-coded) plus
the non-zero values in their original dtype, so decoding is exact.

Integer tensors (int8 weights of quantized models) may also have their values zlib-coded
(``<pattern>+values-zlib``): int8 weights use about 6 of their 8 bits, and an entropy coder
recovers the rest. Integer tensors without zeros to exploit stay plain, so that any safetensors
reader gets dense int8 weights as they are.

Every applicable encoding is tried and the smallest kept; a tensor stays dense when none pays.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

_GAP_ESCAPE = 255  # a gap byte of 255 means "255 more, continue"; any other byte ends the gap


VALUES_ZLIB = "+values-zlib"


@dataclass(frozen=True)
class Encoded:
    """One tensor's storage: ``pattern`` (uint8) and ``values`` (original dtype, or zlib-coded
    bytes for the ``+values-zlib`` encodings) of the ``nnz`` non-zero elements."""

    encoding: str
    pattern: torch.Tensor
    values: torch.Tensor
    nnz: int

    @property
    def nbytes(self) -> int:
        return self.pattern.numel() + self.values.numel() * self.values.element_size()


def _compress(raw: np.ndarray) -> torch.Tensor:
    return torch.frombuffer(bytearray(zlib.compress(raw.tobytes(), 9)), dtype=torch.uint8)


def inflate(data: bytes, limit: int) -> bytes:
    """zlib-decompress ``data``, refusing to produce more than ``limit`` bytes.

    zlib inflates up to ~1000x: an unbounded ``zlib.decompress`` of a crafted file is a
    memory bomb. Raises ValueError (or ``zlib.error`` for a damaged stream).
    """
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise ValueError(f"zlib data inflates beyond the {limit:,} bytes it may hold")
    if not inflater.eof:
        raise ValueError("zlib data is truncated")
    return out


def _decompress(pattern: torch.Tensor, limit: int) -> np.ndarray:
    return np.frombuffer(inflate(pattern.numpy().tobytes(), limit), dtype=np.uint8)


def _encode_gaps(index: np.ndarray) -> np.ndarray:
    gaps = np.diff(index, prepend=-1) - 1
    escapes, rest = np.divmod(gaps, _GAP_ESCAPE)
    out = np.full(int(escapes.sum()) + len(gaps), _GAP_ESCAPE, dtype=np.uint8)
    ends = np.cumsum(escapes + 1) - 1
    out[ends] = rest
    return out


def _decode_gaps(data: np.ndarray) -> np.ndarray:
    total = np.cumsum(data.astype(np.int64))
    ends = np.flatnonzero(data != _GAP_ESCAPE)
    gaps = np.diff(total[ends], prepend=0)
    return np.cumsum(gaps + 1) - 1


def encode_sparse(tensor: torch.Tensor) -> Encoded | None:
    """Encode ``tensor`` sparsely, or return None when dense storage is as small."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    mask = (flat != 0).numpy()
    index = np.flatnonzero(mask)
    values = flat[torch.from_numpy(index)].clone()
    nnz = len(index)
    candidates = [
        Encoded("bitmask-zlib", _compress(np.packbits(mask)), values, nnz),
        Encoded("gaps-zlib", _compress(_encode_gaps(index)), values, nnz),
    ]
    best = min(candidates, key=lambda enc: enc.nbytes)
    if best.nbytes >= flat.numel() * flat.element_size():
        return None  # not sparse enough to pay for its pattern
    if _is_integer(flat.dtype):
        coded = Encoded(best.encoding + VALUES_ZLIB, best.pattern, _compress(values.numpy()), nnz)
        best = min(best, coded, key=lambda enc: enc.nbytes)
    return best


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _uncompress_values(values: torch.Tensor, dtype: torch.dtype | None, numel: int) -> torch.Tensor:
    if dtype is None or not _is_integer(dtype):
        raise ValueError(f"zlib-coded values need their integer dtype, got {dtype}")
    numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    raw = _decompress(values, numel * dtype.itemsize)  # at most one value per element
    if len(raw) % dtype.itemsize:
        raise ValueError(f"{len(raw)} bytes of values are not whole {dtype} values")
    return torch.from_numpy(np.frombuffer(raw, dtype=numpy_dtype).copy())


def decode_sparse(
    encoding: str,
    pattern: torch.Tensor,
    values: torch.Tensor,
    shape: list[int],
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Rebuild the dense tensor. Raises ValueError if the parts do not fit together.

    ``dtype`` is the tensor's dtype, needed by the ``+values-zlib`` encodings. Nothing larger
    than the dense tensor of ``shape`` is allocated: every decompression is bounded by what
    ``shape`` can need, so the caller checks ``shape`` (against the model) first.
    """
    numel = math.prod(shape)  # Python integers: np.prod would wrap around at 2**63
    if encoding.endswith(VALUES_ZLIB):
        encoding = encoding.removesuffix(VALUES_ZLIB)
        values = _uncompress_values(values, dtype, numel)
    if values.numel() > numel:
        raise ValueError(
            f"{numel} elements have too few positions for {values.numel()} non-zero values"
        )
    if encoding == "bitmask-zlib":
        raw = _decompress(pattern, (numel + 7) // 8)
        if len(raw) != (numel + 7) // 8:
            raise ValueError(f"bitmask holds {len(raw) * 8} bits for {numel} elements")
        index = np.flatnonzero(np.unpackbits(raw, count=numel))
    elif encoding == "gaps-zlib":
        # One byte ends each value's gap; the escapes (255 each) add up to fewer than numel.
        index = _decode_gaps(_decompress(pattern, values.numel() + numel // _GAP_ESCAPE + 1))
    else:
        raise ValueError(f"unknown sparse encoding {encoding!r}")
    if len(index) != values.numel() or (len(index) and index[-1] >= numel):
        raise ValueError(f"pattern has {len(index)} positions for {values.numel()} values")
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[torch.from_numpy(index.astype(np.int64))] = values
    return dense.reshape(shape)
