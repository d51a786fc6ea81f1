"""``folder:`` data checked whole when it is loaded: damaged images, empty folders and classes
are one-line DataErrors naming the file or folder, before anything trains (#19 item 5)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from slimkit import DataError, load_data
from slimkit.cli import _commands
from slimkit.cli._main import main

CLASSES = ("boot", "shirt")


def _tree(root: Path, count: int = 3, size: tuple[int, int] = (8, 6)) -> Path:
    for split in ("train", "test"):
        for shade, label in enumerate(CLASSES):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", size, (60 * shade + 10 * i, 90, 0)).save(folder / f"{i}.png")
    return root


def _jpeg_cut_in_its_data() -> bytes:
    """A JPEG whose header is sound (it opens and verifies) but whose pixels end early."""
    buffer = io.BytesIO()
    noise = torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8).numpy()
    Image.fromarray(noise).save(buffer, "JPEG")
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data[: len(data) // 2])) as image:
        image.verify()  # the cut is invisible without decoding
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("path", "content", "problem"),
    [
        ("train/boot/1.png", b"not an image", "cannot identify image file"),
        ("test/shirt/2.png", b"not an image", "cannot identify image file"),
        ("test/shirt/2.png", None, "Truncated File Read"),  # the PNG cut in half
        ("test/boot/9.jpg", "jpeg", "image file is truncated"),
    ],
)
def test_a_damaged_image_anywhere_is_refused_when_the_data_loads(
    tmp_path: Path, path: str, content: bytes | str | None, problem: str
) -> None:
    # a corrupt *test* image crashed after training had finished
    root = _tree(tmp_path)
    target = root / path
    if content is None:  # a PNG large enough that half of it holds its header
        noise = torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8).numpy()
        Image.fromarray(noise).save(target)
        content = target.read_bytes()[: target.stat().st_size // 2]
    elif content == "jpeg":
        content = _jpeg_cut_in_its_data()
    target.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(DataError) as info:
        load_data(f"folder:{root}")
    message = str(info.value)
    assert message.startswith(f"{target} is not a readable image (") and problem in message
    assert message.endswith("; remove or replace it") and "\n" not in message


def test_an_image_damaged_after_loading_is_a_data_error_naming_it(tmp_path: Path) -> None:
    splits = load_data(f"folder:{_tree(tmp_path)}")
    target = tmp_path / "test" / "boot" / "0.png"
    target.write_bytes(b"overwritten meanwhile")
    with pytest.raises(DataError, match=f"^{target} is not a readable image"):
        [splits.test[i] for i in range(len(splits.test))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("empty-train", "image folder {root}/train has no class folders; expected "
                        "{root}/train/<class>/<image>, one folder of images per class"),
        ("empty-class", "class folder(s) shirt in {root}/test hold no images (.jpg, "),
        ("other-classes", "{root}: train and test have different class folders "
                          "(['boot', 'shirt'] and ['boot', 'coat']); give both the same classes"),
    ],
)  # fmt: skip
def test_empty_folders_and_classes_are_refused(tmp_path: Path, damage: str, message: str) -> None:
    root = _tree(tmp_path)
    if damage == "empty-train":
        for label in CLASSES:
            for image in (root / "train" / label).iterdir():
                image.unlink()
            (root / "train" / label).rmdir()
    elif damage == "empty-class":
        for image in (root / "test" / "shirt").iterdir():
            image.unlink()
    else:
        (root / "test" / "shirt").rename(root / "test" / "coat")
    with pytest.raises(DataError) as info:
        load_data(f"folder:{root}")
    assert str(info.value).startswith(message.format(root=root))


def test_mixed_image_sizes_and_modes_are_resized_to_the_first(tmp_path: Path) -> None:
    root = _tree(tmp_path, size=(8, 6))
    Image.new("RGB", (20, 11), (1, 2, 3)).save(root / "train" / "boot" / "1.png")
    Image.new("L", (5, 9), 7).save(root / "test" / "shirt" / "1.png")  # grayscale
    splits = load_data(f"folder:{root}")
    assert splits.input_shape == (3, 6, 8)
    shapes = {tuple(dataset[i][0].shape) for dataset in (splits.train, splits.val, splits.test)
              for i in range(len(dataset))}  # type: ignore[arg-type]  # fmt: skip
    assert shapes == {(3, 6, 8)}


def test_the_cli_refuses_a_damaged_test_image_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(_commands, "train", never)
    root = _tree(tmp_path / "data")
    bad = root / "test" / "boot" / "2.png"
    bad.write_bytes(b"\x89PNG garbage")
    out = tmp_path / "m.safetensors"
    argv = ["train", "--model", "seed-cnn-slim", "--data", f"folder:{root}", "--out", str(out)]
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"slimkit: error: {bad} is not a readable")
    assert not out.exists()
