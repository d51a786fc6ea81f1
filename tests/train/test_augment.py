"""Batch augmentations: shapes and labels kept, images changed, the same draws from a seed."""

from __future__ import annotations

import pytest
import torch

from slimkit.train import AUGMENTS
from slimkit.train._augment import crop_pad, epoch_generator, random_crop, random_flip


def _images(n: int = 64, side: int = 28) -> torch.Tensor:
    return torch.randn(n, 1, side, side)


def test_the_registry_lists_the_augmentations() -> None:
    assert AUGMENTS.names() == ["crop-flip", "none"]


def test_none_returns_the_batch_unchanged() -> None:
    x = _images()
    assert AUGMENTS.get("none")(x, epoch_generator(0, 0)) is x


@pytest.mark.parametrize("shape", [(64, 1, 28, 28), (8, 3, 32, 32), (4, 3, 20, 24)])
def test_crop_flip_keeps_shape_and_dtype_and_changes_images(shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape)
    out = AUGMENTS.get("crop-flip")(x, epoch_generator(0, 0))
    assert out.shape == x.shape and out.dtype == x.dtype
    changed = (out != x).flatten(1).any(dim=1)
    assert (
        changed.float().mean() > 0.5
    )  # most images moved or mirrored (2/25 stay put and unflipped)


def test_crop_flip_is_repeatable_from_the_seed_and_differs_across_epochs() -> None:
    x = _images()
    crop_flip = AUGMENTS.get("crop-flip")
    a = crop_flip(x, epoch_generator(3, 1))
    assert torch.equal(a, crop_flip(x, epoch_generator(3, 1)))
    assert not torch.equal(a, crop_flip(x, epoch_generator(3, 2)))
    assert not torch.equal(a, crop_flip(x, epoch_generator(4, 1)))


def test_random_crop_is_a_shift_with_replicated_edges() -> None:
    x = torch.arange(25.0).reshape(1, 1, 5, 5).repeat(200, 1, 1, 1)
    out = random_crop(x, torch.Generator().manual_seed(0), pad=1)
    # Every output is one of the 9 shifts of the padded image, and all 9 occur.
    padded = torch.nn.functional.pad(x[:1], (1, 1, 1, 1), mode="replicate")[0, 0]
    shifts = [padded[dy : dy + 5, dx : dx + 5] for dy in range(3) for dx in range(3)]
    found = {next(i for i, s in enumerate(shifts) if torch.equal(img[0], s)) for img in out}
    assert found == set(range(9))


def test_random_flip_mirrors_about_half_the_images() -> None:
    x = _images(1000)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).flatten(1).all(dim=1)
    kept = (out == x).flatten(1).all(dim=1)
    assert bool((flipped ^ kept).all())  # each image mirrored or left as it was
    assert 400 < int(flipped.sum()) < 600


def test_crop_pad_scales_with_the_image() -> None:
    assert [crop_pad(s) for s in (8, 28, 32, 224)] == [1, 2, 2, 16]


def test_crop_flip_refuses_non_image_batches() -> None:
    tokens = torch.randint(0, 100, (4, 16))
    with pytest.raises(ValueError, match=r"augment='crop-flip' needs float image batches"):
        AUGMENTS.get("crop-flip")(tokens, epoch_generator(0, 0))
