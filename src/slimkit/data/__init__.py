"""Datasets: Fashion-MNIST/MNIST IDX files, ImageFolder trees and user hooks, split three ways;
unlabeled sentences (fortunes or text files) split into training and held-out sets; a text
corpus built from installed documentation, split by document (:func:`build_corpus`)."""

from ._corpus import (
    CorpusConfig,
    CorpusManifest,
    Document,
    ShardFile,
    SourceStats,
    build_corpus,
    format_of,
    list_documents,
    parse_source,
    read_corpus,
    sentence_key,
)
from ._idx import read_idx
from ._prose import READERS, extract_sentences
from ._sources import DATA_DIR_ENV, DATASETS, check_data_args, load_data
from ._splits import Splits, TensorBatches, make_loader, split_train_val
from ._text import (
    FORTUNES_DIR,
    TextSplits,
    carve_validation,
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
    "READERS",
    "CorpusConfig",
    "CorpusManifest",
    "Document",
    "ShardFile",
    "SourceStats",
    "Splits",
    "TensorBatches",
    "TextSplits",
    "build_corpus",
    "carve_validation",
    "check_data_args",
    "extract_sentences",
    "format_of",
    "fortune_sentences",
    "list_documents",
    "load_data",
    "load_text",
    "make_loader",
    "parse_source",
    "read_corpus",
    "read_idx",
    "read_lines",
    "read_strfile",
    "sentence_key",
    "split_sentences",
    "split_texts",
    "split_train_val",
]
