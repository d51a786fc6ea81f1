from __future__ import annotations

import numpy as np
import pytest
import torch

from slimkit.export import decode_sparse, encode_sparse
from slimkit.export._sparse import _compress, _decode_gaps, _encode_gaps

DENSITIES = [0.0, 0.0005, 0.02, 0.1, 0.5, 0.9, 1.0]  # 0.0: all zeros, 1.0: no zeros


def _tensor(shape: tuple[int, ...], density: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator) + 10.0  # never exactly zero
    keep = torch.rand(shape, generator=generator) < density
    return torch.where(keep, values, torch.zeros(()))


def _pattern(encoding: str, tensor: torch.Tensor) -> torch.Tensor:
    """The zero pattern of ``tensor`` in ``encoding``, built the way the format describes it."""
    mask = (tensor.reshape(-1) != 0).numpy()
    if encoding == "bitmask-zlib":
        return _compress(np.packbits(mask))
    return _compress(_encode_gaps(np.flatnonzero(mask)))


@pytest.mark.parametrize("encoding", ["bitmask-zlib", "gaps-zlib"])
@pytest.mark.parametrize("density", DENSITIES)
def test_each_encoding_decodes_exactly(encoding: str, density: float) -> None:
    tensor = _tensor((37, 3, 5, 5), density)  # 2775 elements: not a multiple of 8
    values = tensor.reshape(-1)[tensor.reshape(-1) != 0]
    decoded = decode_sparse(encoding, _pattern(encoding, tensor), values, list(tensor.shape))
    assert decoded.dtype == tensor.dtype
    assert torch.equal(decoded, tensor)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_encode_then_decode_is_exact(density: float, dtype: torch.dtype) -> None:
    tensor = _tensor((300, 41), density).to(dtype)
    encoded = encode_sparse(tensor)
    if encoded is None:  # dense storage is as small: only when few elements are zero
        assert density >= 0.5
        return
    assert encoded.values.dtype == dtype
    assert encoded.values.numel() == int((tensor != 0).sum())
    decoded = decode_sparse(encoded.encoding, encoded.pattern, encoded.values, [300, 41])
    assert torch.equal(decoded, tensor)


def test_all_zero_and_no_zero_tensors() -> None:
    zeros = torch.zeros(1000)
    encoded = encode_sparse(zeros)
    assert encoded is not None and encoded.values.numel() == 0
    assert encoded.nbytes < 100
    assert torch.equal(
        decode_sparse(encoded.encoding, encoded.pattern, encoded.values, [1000]), zeros
    )
    assert encode_sparse(torch.arange(1.0, 1001.0)) is None  # nothing to gain


def test_encoding_keeps_the_smaller_candidate() -> None:
    tensor = _tensor((200, 50), 0.03)
    encoded = encode_sparse(tensor)
    assert encoded is not None
    sizes = {name: _pattern(name, tensor).numel() for name in ("bitmask-zlib", "gaps-zlib")}
    assert encoded.encoding == min(sizes, key=sizes.__getitem__)
    assert encoded.pattern.numel() == min(sizes.values())
    assert encoded.nbytes < tensor.numel() * 4


def test_gap_bytes_by_hand() -> None:
    # positions 0, 300, 301, 1000 -> gaps 0, 299, 0, 698; 255 means "255 more, continue"
    index = np.array([0, 300, 301, 1000])
    assert _encode_gaps(index).tolist() == [0, 255, 44, 0, 255, 255, 188]
    assert _decode_gaps(np.array([0, 255, 44, 0, 255, 255, 188], dtype=np.uint8)).tolist() == [
        0,
        300,
        301,
        1000,
    ]


@pytest.mark.parametrize("gap", [254, 255, 256, 510, 511, 765, 70_000])
def test_gaps_around_and_beyond_one_byte(gap: int) -> None:
    tensor = torch.zeros(gap + 3)
    tensor[0], tensor[gap + 1] = 1.5, -2.5  # one gap of exactly `gap` zeros in between
    values = tensor[tensor != 0]
    for encoding in ("bitmask-zlib", "gaps-zlib"):
        decoded = decode_sparse(encoding, _pattern(encoding, tensor), values, [gap + 3])
        assert torch.equal(decoded, tensor)


def test_mismatched_parts_are_value_errors() -> None:
    tensor = _tensor((64,), 0.25)
    values = tensor[tensor != 0]
    pattern = _pattern("gaps-zlib", tensor)
    with pytest.raises(ValueError, match="positions for"):
        decode_sparse("gaps-zlib", pattern, values[:-1], [64])
    with pytest.raises(ValueError, match="positions for"):
        decode_sparse("gaps-zlib", pattern, values, [8])  # positions beyond the tensor
    with pytest.raises(ValueError, match="bits for 100 elements"):
        decode_sparse("bitmask-zlib", _pattern("bitmask-zlib", tensor), values, [100])
    with pytest.raises(ValueError, match="unknown sparse encoding 'rle'"):
        decode_sparse("rle", pattern, values, [64])


def _int8_weights(shape: tuple[int, ...], density: float, seed: int = 0) -> torch.Tensor:
    """Like quantized weights: roughly Gaussian int8 values, with zeros where pruned."""
    generator = torch.Generator().manual_seed(seed)
    values = (torch.randn(shape, generator=generator) * 30).round().clamp(-127, 127)
    keep = torch.rand(shape, generator=generator) < density
    return torch.where(keep, values, torch.zeros(())).to(torch.int8)


@pytest.mark.parametrize("density", [0.05, 0.12, 0.5])
@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32])
def test_integer_tensors_are_entropy_coded_and_decode_exactly(
    density: float, dtype: torch.dtype
) -> None:
    tensor = _int8_weights((128, 392), density).abs().to(dtype)
    encoded = encode_sparse(tensor)
    assert encoded is not None  # Gaussian int8 values use about 6 of their 8 bits
    assert encoded.encoding.endswith("+values-zlib")
    assert encoded.nnz == int(tensor.count_nonzero())
    raw_values = encoded.nnz * tensor.element_size()
    assert encoded.values.numel() < 0.9 * raw_values
    decoded = decode_sparse(encoded.encoding, encoded.pattern, encoded.values, [128, 392], dtype)
    assert decoded.dtype == dtype and torch.equal(decoded, tensor)


def test_dense_integer_tensors_stay_plain() -> None:
    # A few zeros (weights rounded to 0) do not make a tensor sparse: any safetensors reader
    # gets dense int8 weights as they are.
    tensor = _int8_weights((128, 392), 1.0)
    assert int((tensor == 0).sum()) > 0 and encode_sparse(tensor) is None


def test_zlib_coded_values_need_their_dtype() -> None:
    encoded = encode_sparse(_int8_weights((128, 392), 0.1))
    assert encoded is not None and encoded.encoding.endswith("+values-zlib")
    with pytest.raises(ValueError, match="integer dtype"):
        decode_sparse(encoded.encoding, encoded.pattern, encoded.values, [128, 392])
    with pytest.raises(ValueError, match="integer dtype"):
        decode_sparse(encoded.encoding, encoded.pattern, encoded.values, [128, 392], torch.float32)


def _bomb(size: int, byte: int = 0xFF) -> torch.Tensor:
    """``size`` bytes of ``byte``, zlib-coded: about a thousandth of that."""
    return _compress(np.full(size, byte, dtype=np.uint8))


@pytest.mark.parametrize(
    ("encoding", "part", "limit"),
    [
        ("bitmask-zlib", "pattern", 8),  # 64 elements: an 8-byte bitmask
        ("gaps-zlib", "pattern", 17),  # 16 values: 16 gap ends, no 255-zero run fits in 64
        ("bitmask-zlib+values-zlib", "values", 64),  # 64 int8 elements: 64 bytes at most
    ],
)
def test_decompression_is_bounded_by_the_shape(encoding: str, part: str, limit: int) -> None:
    # An unbounded zlib.decompress of a crafted pattern inflated ~1000x before any check.
    tensor = _tensor((64,), 0.25).to(torch.int8)
    values = tensor[tensor != 0][:16]
    pattern = _pattern(encoding.removesuffix("+values-zlib"), tensor)
    if part == "pattern":
        pattern = _bomb(8 << 20)
    else:
        values = _bomb(8 << 20, 1)
    with pytest.raises(ValueError, match=f"inflates beyond the {limit} bytes"):
        decode_sparse(encoding, pattern, values, [64], torch.int8)


def test_more_values_than_elements_are_refused_before_allocating() -> None:
    values = torch.ones(100)
    with pytest.raises(ValueError, match="64 elements have too few positions for 100"):
        decode_sparse("gaps-zlib", _pattern("gaps-zlib", torch.ones(100)), values, [64])
