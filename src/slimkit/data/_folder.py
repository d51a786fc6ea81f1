"""``folder:<path>`` data: an ImageFolder tree, checked whole before anything trains on it.

A corrupt test image used to crash the final measurement after training had finished; an
empty split or class folder gave torchvision's traceback. Every image is opened and verified
when the data is loaded, and an image that still fails to decode later (a JPEG whose header is
sound but whose data is cut) is a :class:`DataError` naming the file, not a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ._splits import Splits, split_train_val

#: Training images read to compute a folder dataset's per-channel mean and std.
STATS_IMAGES = 512
#: How a JPEG file ends; one that ends otherwise is decoded whole to find out whether it is cut.
_JPEG_END = b"\xff\xd9"


def load_image(path: str) -> Any:
    """An RGB PIL image, or a :class:`DataError` naming the file (ImageFolder's loader)."""
    from PIL import Image

    try:
        with open(path, "rb") as handle, Image.open(handle) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:  # PIL reports damage as all three
        raise _unreadable(path, err) from None


def _unreadable(path: str | Path, err: BaseException) -> DataError:
    problem = " ".join(str(err).split()) or type(err).__name__
    return DataError(f"{path} is not a readable image ({problem}); remove or replace it")


def check_image(path: str) -> None:
    """Raise :class:`DataError` unless ``path`` opens and verifies as an image.

    ``verify`` reads the header and, for PNG, every chunk's checksum, without decoding. A JPEG
    is checked for its end marker as well, and decoded only when that is missing.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            kind = image.format
            image.verify()
        if kind == "JPEG" and not _ends_with(path, _JPEG_END):
            with Image.open(path) as image:
                image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise _unreadable(path, err) from None


def _ends_with(path: str, tail: bytes) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        if handle.tell() < len(tail):
            return False
        handle.seek(-len(tail), 2)
        return handle.read() == tail


def image_folder(root: Path, split: str, transform: Any = None) -> Any:
    """``root/split`` as an ImageFolder; no class folder, or one without images, is a
    :class:`DataError` that says what the tree must look like."""
    from torchvision import datasets

    directory = root / split
    try:
        dataset = datasets.ImageFolder(
            str(directory), transform=transform, loader=load_image, allow_empty=True
        )
    except FileNotFoundError:
        raise DataError(
            f"image folder {directory} has no class folders; expected "
            f"{directory}/<class>/<image>, one folder of images per class"
        ) from None
    counts = torch.bincount(torch.tensor(dataset.targets, dtype=torch.long),
                            minlength=len(dataset.classes))  # fmt: skip
    empty = [
        name for name, count in zip(dataset.classes, counts.tolist(), strict=True) if not count
    ]
    if empty:
        extensions = ", ".join(datasets.folder.IMG_EXTENSIONS)
        raise DataError(
            f"class folder(s) {', '.join(empty)} in {directory} hold no images ({extensions}); "
            "add images to them or remove them"
        )
    return dataset


def check_images(dataset: Any) -> None:
    """Open and verify every image of an ImageFolder (see :func:`check_image`)."""
    for path, _label in dataset.samples:
        check_image(path)


def _channel_stats(dataset: Any) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over (up to :data:`STATS_IMAGES`) images of ``dataset``."""
    step = max(1, len(dataset) // STATS_IMAGES)
    images = torch.stack([dataset[i][0] for i in range(0, len(dataset), step)])
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3), unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant channels stay as they are
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def load_folder(path: str, val_size: int, image_size: int | None = None) -> Splits:
    """An ImageFolder tree: ``<path>/train/<class>/*`` and ``<path>/test/<class>/*``.

    Every image is resized to one size: ``image_size`` (shorter side resized, then center-cropped
    square: the usual preprocessing of ImageNet-style models at their native resolution), or
    without it the first training image's height and width; so images of mixed sizes (and
    modes: every image is read as RGB) make one dataset. Pixels are then normalised per
    channel with the training images' mean and std. Both are recorded in ``meta`` (and so in
    the provenance of the artifacts trained on it).

    Raises:
        DataError: if ``train/`` or ``test/`` is missing, has no class folders or an empty
            one, the two have different classes, or any image cannot be read.
    """
    from torchvision import transforms

    root = Path(path)
    missing = [part for part in ("train", "test") if not (root / part).is_dir()]
    if missing:
        raise DataError(
            f"image folder {root} lacks {' and '.join(missing)}/; expected "
            f"{root}/train/<class>/<image> and {root}/test/<class>/<image>"
        )
    probe, probe_test = image_folder(root, "train"), image_folder(root, "test")
    if probe.classes != probe_test.classes:
        raise DataError(
            f"{root}: train and test have different class folders ({probe.classes} and "
            f"{probe_test.classes}); give both the same classes"
        )
    # Before any image is used: the test set is read only at the end, after training.
    check_images(probe)
    check_images(probe_test)
    if image_size is not None:
        resize: Any = transforms.Compose(
            [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
        )
        size: list[int] = [image_size, image_size]
    else:
        width, height = probe[0][0].size
        size = [height, width]
        resize = transforms.Resize((height, width))
    plain = transforms.Compose([resize, transforms.ToTensor()])
    mean, std = _channel_stats(image_folder(root, "train", plain))
    transform = transforms.Compose([plain, transforms.Normalize(mean, std)])
    full_train = image_folder(root, "train", transform)
    test = image_folder(root, "test", transform)
    train, val = split_train_val(full_train, min(val_size, max(1, len(full_train) // 10)))
    shape = tuple(full_train[0][0].shape)
    meta = {
        "classes": full_train.classes,
        "resize": size,
        "normalization": {"mean": mean, "std": std},
    }
    return Splits(f"folder:{root}", train, val, test, len(full_train.classes), shape, meta)
