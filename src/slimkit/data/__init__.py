"""Datasets: Fashion-MNIST/MNIST IDX files, ImageFolder trees and user hooks, split three ways;
unlabeled sentences (fortunes or text files) split into training and held-out sets."""

from ._idx import read_idx
from ._sources import DATA_DIR_ENV, DATASETS, check_data_args, load_data
from ._splits import Splits, TensorBatches, make_loader, split_train_val
from ._text import (
    FORTUNES_DIR,
    TextSplits,
    fortune_sentences,
    load_text,
    read_lines,
    read_strfile,
    split_sentences,
    split_texts,
)

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "FORTUNES_DIR",
    "Splits",
    "TensorBatches",
    "TextSplits",
    "check_data_args",
    "fortune_sentences",
    "load_data",
    "load_text",
    "make_loader",
    "read_idx",
    "read_lines",
    "read_strfile",
    "split_sentences",
    "split_texts",
    "split_train_val",
]
