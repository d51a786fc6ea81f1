"""Datasets: Fashion-MNIST/MNIST IDX files, ImageFolder trees and user hooks, split three ways."""

from ._idx import read_idx
from ._sources import DATA_DIR_ENV, DATASETS, load_data
from ._splits import Splits, TensorBatches, make_loader, split_train_val

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "Splits",
    "TensorBatches",
    "load_data",
    "make_loader",
    "read_idx",
    "split_train_val",
]
