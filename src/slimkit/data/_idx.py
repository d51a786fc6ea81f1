"""Readers for the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# The third byte of the magic number names the element type; only unsigned bytes are used by
# (Fashion-)MNIST, the others are accepted for completeness.
_DTYPES: dict[int, type | str] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array.

    Raises:
        DataError: if the file is missing, truncated or not an IDX file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DataError(f"IDX file {path} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_end])
    dtype: np.dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header_end != expected:
        raise DataError(
            f"IDX file {path} holds {len(raw) - header_end} data bytes, expected {expected} "
            f"for shape {shape}; the file is truncated or corrupted, reinstall the dataset"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)


def find_idx(directory: Path, stem: str) -> Path:
    """Find ``stem`` (e.g. ``train-images-idx3-ubyte``) in ``directory``, gzipped or not."""
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory} has no {stem}[.gz]")
