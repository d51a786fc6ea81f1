"""Compact encodings of sparse tensors: a zero pattern (bitmask or index gaps, zlib-coded) plus
the non-zero values in their original dtype, so decoding is exact.

Both encodings are tried and the smaller one is kept; a tensor stays dense when neither pays.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

_GAP_ESCAPE = 255  # a gap byte of 255 means "255 more, continue"; any other byte ends the gap


@dataclass(frozen=True)
class Encoded:
    """One tensor's storage: ``pattern`` (uint8) and ``values`` (original dtype)."""

    encoding: str
    pattern: torch.Tensor
    values: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.pattern.numel() + self.values.numel() * self.values.element_size()


def _compress(raw: np.ndarray) -> torch.Tensor:
    return torch.frombuffer(bytearray(zlib.compress(raw.tobytes(), 9)), dtype=torch.uint8)


def _decompress(pattern: torch.Tensor) -> np.ndarray:
    return np.frombuffer(zlib.decompress(pattern.numpy().tobytes()), dtype=np.uint8)


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
    candidates = [
        Encoded("bitmask-zlib", _compress(np.packbits(mask)), values),
        Encoded("gaps-zlib", _compress(_encode_gaps(index)), values),
    ]
    best = min(candidates, key=lambda enc: enc.nbytes)
    dense_bytes = flat.numel() * flat.element_size()
    return best if best.nbytes < dense_bytes else None


def decode_sparse(
    encoding: str, pattern: torch.Tensor, values: torch.Tensor, shape: list[int]
) -> torch.Tensor:
    """Rebuild the dense tensor. Raises ValueError if the parts do not fit together."""
    numel = int(np.prod(shape)) if shape else 1
    raw = _decompress(pattern)
    if encoding == "bitmask-zlib":
        if len(raw) != (numel + 7) // 8:
            raise ValueError(f"bitmask holds {len(raw) * 8} bits for {numel} elements")
        index = np.flatnonzero(np.unpackbits(raw, count=numel))
    elif encoding == "gaps-zlib":
        index = _decode_gaps(raw)
    else:
        raise ValueError(f"unknown sparse encoding {encoding!r}")
    if len(index) != values.numel() or (len(index) and index[-1] >= numel):
        raise ValueError(f"pattern has {len(index)} positions for {values.numel()} values")
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[torch.from_numpy(index.astype(np.int64))] = values
    return dense.reshape(shape)
