"""Training-time data augmentation: cheap tensor ops on whole batches, seeded per epoch.

Augmentation runs inside the training loop on the training batches only (validation and test
images are never touched), so it works on the in-memory tensor datasets without a transform
pipeline, and a distillation teacher sees the same augmented views as its student.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .._registry import Registry

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

#: Batch augmentations by name: ``augment(x, generator)`` returns a batch of the same shape.
AUGMENTS: Registry[Augment] = Registry("augmentation")


def crop_pad(side: int) -> int:
    """Padding of the random crop: a fourteenth of the side (2 px at 28 and at 32).

    Fashion-MNIST's garments are centred and fill the frame; the CIFAR habit of 4 px (a seventh
    of 28) moves them further than the test images ever are.
    """
    return max(1, round(side / 14))


def _check_images(name: str, x: torch.Tensor) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"augment={name!r} needs float image batches (N, C, H, W), got a {x.dtype} "
            f"batch of shape {tuple(x.shape)}; use augment='none' for this data"
        )


def random_crop(x: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Each image shifted by up to ``pad`` pixels each way; borders repeat the edge pixels.

    Edge replication rather than zeros: the images are normalised, so a zero is mid-grey,
    not the background.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    rows = (dy + torch.arange(h)).to(x.device)
    cols = (dx + torch.arange(w)).to(x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Half of the images (drawn at random) mirrored left to right."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _none(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return x


def _crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    _check_images("crop-flip", x)
    return random_flip(random_crop(x, generator, crop_pad(min(x.shape[-2:]))), generator)


AUGMENTS.register("none", _none)
AUGMENTS.register("crop-flip", _crop_flip)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random stream of one epoch's augmentations: a resumed run draws the same ones."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)
