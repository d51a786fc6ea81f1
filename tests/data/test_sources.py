from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import Subset, TensorDataset

from slimkit import DataError, Splits, load_data
from slimkit.data import DATA_DIR_ENV, make_loader, split_train_val
from slimkit.testing import MISSING_DATA_HINT, fashion_mnist_slice


def _indices(dataset: object) -> list[int]:
    assert isinstance(dataset, Subset)
    return list(dataset.indices)


def test_fashion_mnist_sizes_and_shapes(fmnist_full: Splits) -> None:
    assert (len(fmnist_full.train), len(fmnist_full.val), len(fmnist_full.test)) == (
        50_000,
        10_000,
        10_000,
    )
    assert fmnist_full.input_shape == (1, 28, 28)
    assert fmnist_full.num_classes == 10
    assert len(fmnist_full.meta["classes"]) == 10
    x, y = fmnist_full.test[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64


def test_fashion_mnist_is_normalized_with_its_training_statistics(fmnist_full: Splits) -> None:
    full = fmnist_full.train.dataset
    assert isinstance(full, TensorDataset)
    x, y = full.tensors
    assert x.shape == (60_000, 1, 28, 28)
    assert abs(float(x.mean())) < 0.01
    assert abs(float(x.std()) - 1.0) < 0.01
    assert torch.bincount(y).tolist() == [6_000] * 10  # Fashion-MNIST is balanced


def test_train_val_split_is_disjoint_and_complete(fmnist_full: Splits) -> None:
    train, val = set(_indices(fmnist_full.train)), set(_indices(fmnist_full.val))
    assert not train & val
    assert train | val == set(range(60_000))


def test_train_val_split_is_fixed(fmnist_full: Splits, fmnist: Splits) -> None:
    full = fmnist_full.train.dataset
    torch.manual_seed(12345)  # the split must not depend on the global seed
    again_train, again_val = split_train_val(full, 10_000)
    assert _indices(again_val) == _indices(fmnist_full.val)
    assert _indices(again_train) == _indices(fmnist_full.train)
    # A separate load with limits keeps the first examples of the same validation split.
    x_slice, _ = next(iter(make_loader(fmnist.val, batch_size=256)))
    x_full, _ = next(iter(make_loader(fmnist_full.val, batch_size=256)))
    assert torch.equal(x_slice, x_full)


def test_limits_cut_every_split(fmnist: Splits) -> None:
    assert (len(fmnist.train), len(fmnist.val), len(fmnist.test)) == (512, 256, 256)
    assert fmnist.describe()["sizes"] == {"train": 512, "val": 256, "test": 256}
    assert fmnist.input_shape == (1, 28, 28)


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(DataError) as info:
        load_data("fashion-mnits")
    message = str(info.value)
    assert "did you mean 'fashion-mnist'" in message
    assert "known: fashion-mnist, mnist" in message
    assert "folder:<path>" in message and "module:function" in message


def test_missing_data_dir_says_how_to_install(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist") as info:
        load_data("fashion-mnist", data_dir=missing)
    assert str(missing) in str(info.value)


def test_data_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "from-env"))
    with pytest.raises(DataError, match="from-env"):
        load_data("fashion-mnist")


def test_empty_data_dir_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"has no train-images-idx3-ubyte\[\.gz\]"):
        load_data("fashion-mnist", data_dir=tmp_path)


def test_fixture_error_says_to_run_make_test(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        fashion_mnist_slice(data_dir=tmp_path / "nowhere")
    assert MISSING_DATA_HINT in str(info.value)
    assert "`make test`" in str(info.value)


# --- ImageFolder trees -------------------------------------------------------------------------

_SHADES = {"boot": 51, "shirt": 204}  # 0.2 and 0.8 after ToTensor


def _image_tree(root: Path, per_class: dict[str, int]) -> None:
    for split, count in per_class.items():
        for label, shade in _SHADES.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = bytes([shade] * 35)
                Image.frombytes("L", (7, 5), pixels).save(folder / f"{i}.png")


def test_image_folder_source(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"train": 5, "test": 2})
    splits = load_data(f"folder:{tmp_path}")
    assert splits.num_classes == 2
    assert splits.meta["classes"] == ["boot", "shirt"]
    assert splits.input_shape == (3, 5, 7)  # ImageFolder reads RGB; PIL sizes are (w, h)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 1, 4)
    # Normalised with the training images' statistics: shades 0.2 and 0.8, mean 0.5, std 0.3.
    norm = splits.meta["normalization"]
    assert norm["mean"] == pytest.approx([0.5] * 3, abs=1e-3)
    assert norm["std"] == pytest.approx([0.3] * 3, abs=1e-3)
    assert splits.meta["resize"] == [5, 7]
    for x, y in [splits.test[i] for i in range(4)]:
        expected = (_SHADES[splits.meta["classes"][y]] / 255 - 0.5) / 0.3
        assert torch.allclose(x, torch.full((3, 5, 7), expected), atol=1e-2)
    assert sorted(int(splits.test[i][1]) for i in range(4)) == [0, 0, 1, 1]


def test_image_folder_at_a_native_resolution_resizes_mixed_sizes(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("test", 2)):
        for label, shade in _SHADES.items():
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                width, height = 12 + 7 * i, 9 + 3 * i  # every image a different size
                Image.new("RGB", (width, height), (shade, shade, 0)).save(folder / f"{i}.png")
    splits = load_data(f"folder:{tmp_path}", image_size=16)
    assert splits.input_shape == (3, 16, 16) and splits.meta["resize"] == [16, 16]
    x, _ = next(iter(torch.utils.data.DataLoader(splits.train, batch_size=8)))
    assert x.shape == (7, 3, 16, 16)  # one batch of every training image: same size
    assert splits.meta["normalization"]["std"][2] == 1.0  # a constant channel is left as is
    described = splits.describe()
    assert described["resize"] == [16, 16] and "normalization" in described


def test_image_folder_without_test_split(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"train": 2})
    with pytest.raises(DataError, match="lacks test/"):
        load_data(f"folder:{tmp_path}")


# --- module:function hooks ---------------------------------------------------------------------

_HOOK = """
import torch
from torch.utils.data import TensorDataset

def _part(n, offset):
    x = torch.arange(offset, offset + n * 4, dtype=torch.float32).reshape(n, 1, 2, 2)
    return TensorDataset(x, torch.arange(n) % 3)

def pair():
    return _part(20, 0), _part(6, 1000)

def triple():
    return _part(20, 0), _part(4, 500), _part(6, 1000)

def wrong():
    return [1, 2]
"""


@pytest.fixture
def hook_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "slimkit_test_data_hook"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(_HOOK))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_hook_returning_train_and_test(hook_module: str) -> None:
    splits = load_data(f"{hook_module}:pair", val_size=5)
    assert splits.name == f"{hook_module}:pair"
    # val_size is capped at a tenth of the training data for small datasets
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 2, 6)
    assert splits.num_classes == 3
    assert splits.input_shape == (1, 2, 2)
    assert float(splits.test[0][0][0, 0, 0]) == 1000.0


def test_hook_returning_three_splits(hook_module: str) -> None:
    splits = load_data(f"{hook_module}:triple", limit_train=8)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 4, 6)
    assert float(splits.val[0][0][0, 0, 0]) == 500.0


def test_hook_with_wrong_result_type(hook_module: str) -> None:
    with pytest.raises(DataError, match=r"must return slimkit\.data\.Splits.*got list"):
        load_data(f"{hook_module}:wrong")


def test_hook_that_does_not_exist(hook_module: str) -> None:
    with pytest.raises(DataError, match="cannot import data hook"):
        load_data(f"{hook_module}:absent")
    with pytest.raises(DataError, match="cannot import data hook"):
        load_data("no_such_module_for_slimkit:fn")


def test_image_size_must_be_a_positive_integer(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"train": 2, "test": 1})
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="image_size"):
            load_data(f"folder:{tmp_path}", image_size=bad)  # type: ignore[arg-type]


def test_the_cli_resizes_folder_data_to_the_image_size_it_is_given(tmp_path: Path) -> None:
    from slimkit.cli._main import build_parser

    args = build_parser().parse_args(["profile", "m.safetensors", "--image-size", "24"])
    assert args.image_size == 24
    _image_tree(tmp_path, {"train": 2, "test": 1})
    from slimkit.cli._commands import _data

    splits = _data(
        build_parser().parse_args(
            ["profile", "m.safetensors", "--data", f"folder:{tmp_path}", "--image-size", "24"]
        )
    )
    assert splits.input_shape == (3, 24, 24) and splits.meta["resize"] == [24, 24]
