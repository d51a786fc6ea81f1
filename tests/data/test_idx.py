from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from slimkit import DataError
from slimkit.data import read_idx
from slimkit.data._idx import find_idx

# Written out by hand from the IDX spec: magic 0x00 0x00 <type> <ndim>, big-endian uint32 sizes.
IMAGES_2x2x3 = (
    bytes([0x00, 0x00, 0x08, 0x03])
    + struct.pack(">III", 2, 2, 3)
    + bytes([0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255])
)
LABELS_4 = bytes([0x00, 0x00, 0x08, 0x01]) + struct.pack(">I", 4) + bytes([9, 0, 3, 7])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_reads_images_raw_and_gzip(tmp_path: Path, name: str) -> None:
    array = read_idx(_write(tmp_path / name, IMAGES_2x2x3))
    assert array.dtype == np.uint8
    assert array.shape == (2, 2, 3)
    assert array[0].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert array[1].tolist() == [[250, 251, 252], [253, 254, 255]]


def test_reads_labels_gzip(tmp_path: Path) -> None:
    array = read_idx(_write(tmp_path / "labels.gz", LABELS_4))
    assert array.shape == (4,)
    assert array.tolist() == [9, 0, 3, 7]


def test_reads_big_endian_int32(tmp_path: Path) -> None:
    data = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + struct.pack(">iii", -1, 256, 70000)
    array = read_idx(_write(tmp_path / "ints", data))
    assert array.tolist() == [-1, 256, 70000]


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_data_is_a_data_error(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"images{suffix}", IMAGES_2x2x3[:-1])
    with pytest.raises(DataError, match=r"holds 11 data bytes, expected 12.*truncated"):
        read_idx(path)


def test_truncated_header_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="truncated"):
        read_idx(_write(tmp_path / "images", IMAGES_2x2x3[:10]))


def test_cut_gzip_stream_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(IMAGES_2x2x3)[:-12])  # the stream stops mid-way
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(path)


def test_corrupted_gzip_stream_is_a_data_error(tmp_path: Path) -> None:
    # Flipping a byte of the deflate stream makes zlib itself fail (zlib.error, not OSError).
    compressed = bytearray(gzip.compress(IMAGES_2x2x3 * 40))
    compressed[10] ^= 0xFF
    path = tmp_path / "images.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(path)


def test_bad_magic_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(_write(tmp_path / "png", b"\x89PNG\r\n\x1a\n" + bytes(16)))


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "absent.gz")


def test_find_idx_prefers_gzip_then_raw(tmp_path: Path) -> None:
    raw = _write(tmp_path / "train-labels-idx1-ubyte", LABELS_4)
    assert find_idx(tmp_path, "train-labels-idx1-ubyte") == raw
    gz = _write(tmp_path / "train-labels-idx1-ubyte.gz", LABELS_4)
    assert find_idx(tmp_path, "train-labels-idx1-ubyte") == gz
    with pytest.raises(DataError, match=r"has no t10k-labels-idx1-ubyte\[\.gz\]"):
        find_idx(tmp_path, "t10k-labels-idx1-ubyte")
