"""Dataset sources: IDX directories, ImageFolder trees and user hooks, behind one ``load_data``."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .._checks import check_int, check_str
from .._registry import Registry
from ..errors import DataError
from ._folder import load_folder
from ._idx import find_idx, read_idx
from ._splits import Splits, split_train_val, take

DATA_DIR_ENV = "SLIMKIT_DATA_DIR"
_IDX_DEFAULTS = {
    "fashion-mnist": {
        "dir": "/usr/share/datasets/fashion-mnist",
        "install": "apt-get install -y dataset-fashion-mnist",
        "mean": 0.2860,
        "std": 0.3530,
        "classes": [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    },
    "mnist": {
        "dir": "/usr/share/datasets/mnist",
        "install": "download the four MNIST IDX .gz files into a directory",
        "mean": 0.1307,
        "std": 0.3081,
        "classes": [str(i) for i in range(10)],
    },
}

Loader = Callable[..., Splits]
#: Named dataset sources. ``folder:<path>`` and ``module:function`` are resolved by prefix.
DATASETS: Registry[Loader] = Registry("dataset")


def _idx_split(directory: Path, prefix: str, mean: float, std: float) -> TensorDataset:
    images = read_idx(find_idx(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(directory, f"{prefix}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise DataError(f"{directory}: {len(images)} {prefix} images but {len(labels)} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - mean) / std
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def _load_idx(name: str, data_dir: str | Path | None, val_size: int) -> Splits:
    info = _IDX_DEFAULTS[name]
    directory = Path(data_dir or os.environ.get(DATA_DIR_ENV) or str(info["dir"]))
    if not directory.is_dir():
        raise DataError(
            f"{name} data not found in {directory}; install it with `{info['install']}` "
            f"or point --data-dir (or ${DATA_DIR_ENV}) at a directory with the IDX files"
        )
    mean, std = float(info["mean"]), float(info["std"])  # type: ignore[arg-type]
    full_train = _idx_split(directory, "train", mean, std)
    test = _idx_split(directory, "t10k", mean, std)
    train, val = split_train_val(full_train, val_size)
    meta = {"normalization": {"mean": [mean], "std": [std]}, "classes": info["classes"]}
    shape = tuple(full_train.tensors[0].shape[1:])
    return Splits(name, train, val, test, len(info["classes"]), shape, meta)  # type: ignore[arg-type]


for _name in _IDX_DEFAULTS:
    DATASETS.register(_name, lambda data_dir, val_size, _n=_name: _load_idx(_n, data_dir, val_size))


def _infer_num_classes(dataset: Dataset[Any]) -> int:
    labels = {int(dataset[i][1]) for i in range(len(dataset))}  # type: ignore[arg-type]
    return max(labels) + 1


def _load_hook(spec: str, val_size: int) -> Splits:
    """``package.module:function`` returning Splits, (train, test) or (train, val, test)."""
    module_name, _, func_name = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as err:
        raise DataError(f"cannot import data hook {spec!r}: {err}") from None
    result = func()
    if isinstance(result, Splits):
        return result
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise DataError(
            f"data hook {spec!r} must return slimkit.data.Splits, (train, test) or "
            f"(train, val, test) datasets; got {type(result).__name__}"
        )
    if len(result) == 2:
        train, val = split_train_val(result[0], min(val_size, max(1, len(result[0]) // 10)))
        test = result[1]
    else:
        train, val, test = result
    shape = tuple(train[0][0].shape)
    return Splits(spec, train, val, test, _infer_num_classes(test), shape, {})


def check_data_args(
    name: object,
    data_dir: object = None,
    val_size: object = 10_000,
    limit_train: object = None,
    limit_eval: object = None,
    image_size: object = None,
) -> None:
    """Raise ``ValueError`` unless the :func:`load_data` arguments have their kinds, reading
    nothing (a recipe's YAML can hold anything; it is checked before the model is loaded)."""
    check_str("name", name)
    if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
        raise ValueError(f"data_dir must be a directory path, got {data_dir!r}")
    check_int("val_size", val_size, minimum=1)
    for field, value in (
        ("limit_train", limit_train),
        ("limit_eval", limit_eval),
        ("image_size", image_size),
    ):
        if value is not None:
            check_int(field, value, minimum=1)


def load_data(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_size: int = 10_000,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    image_size: int | None = None,
) -> Splits:
    """Load a dataset by name and split it into train / validation / test.

    Args:
        name: ``fashion-mnist``, ``mnist``, ``folder:<path>`` (ImageFolder tree with ``train/``
            and ``test/``) or ``module:function`` (a hook returning datasets).
        data_dir: where the IDX files live (default: ``$SLIMKIT_DATA_DIR`` or the Debian
            package's directory).
        val_size: number of training examples held out for validation (fixed permutation).
            10,000 by default: with 5,000 the standard error of an accuracy difference is
            about 0.3 points, too coarse for budgets of half a point.
        limit_train: keep only this many training examples (quick experiments, tests).
        limit_eval: keep only this many validation and test examples.
        image_size: for ``folder:`` data, the side every image is resized and center-cropped
            to (a model's native resolution, e.g. 224); by default the first training image's
            size. Ignored by the other sources.

    Example:
        >>> splits = slimkit.load_data("fashion-mnist", limit_train=2000)

    Raises:
        DataError: if the data is missing or malformed; the message says how to get it.
        ValueError: if an argument has the wrong kind (a recipe's ``limit_train: abc``).
    """
    check_data_args(name, data_dir, val_size, limit_train, limit_eval, image_size)
    if name in DATASETS:
        splits = DATASETS.get(name)(data_dir, val_size)
    elif name.startswith("folder:"):
        splits = load_folder(name[len("folder:") :], val_size, image_size)
    elif ":" in name:
        splits = _load_hook(name, val_size)
    else:
        raise DataError(
            f"{DATASETS.unknown_message(name)}; or folder:<path> for an ImageFolder tree, "
            "or module:function for your own datasets"
        )
    if limit_train is None and limit_eval is None:
        return splits
    return Splits(
        splits.name,
        take(splits.train, limit_train),
        take(splits.val, limit_eval),
        take(splits.test, limit_eval),
        splits.num_classes,
        splits.input_shape,
        splits.meta,
    )
