"""slimkit: make PyTorch models smaller and faster while keeping their accuracy."""

from ._version import __version__
from .data import Splits, load_data
from .distill import AttentionTransfer, DistillConfig, HintKD, LogitKD, distill, slim
from .errors import (
    AccuracyBudgetError,
    ArtifactError,
    DataError,
    ModelError,
    PruningTargetError,
    SlimkitError,
    UnsupportedOpError,
)
from .export import load, load_weights, read_spec, save
from .measure import Profile, count_macs, evaluate_accuracy, profile
from .models import create_model
from .prune import (
    AGP,
    Global,
    OneShot,
    PerLayer,
    StructuredConfig,
    UnstructuredConfig,
    prune,
    search_sparsity,
)
from .search import CompressConfig, compress
from .train import TrainConfig, train

__all__ = [
    "AGP",
    "AccuracyBudgetError",
    "ArtifactError",
    "AttentionTransfer",
    "CompressConfig",
    "DataError",
    "DistillConfig",
    "Global",
    "HintKD",
    "LogitKD",
    "ModelError",
    "OneShot",
    "PerLayer",
    "Profile",
    "PruningTargetError",
    "SlimkitError",
    "Splits",
    "StructuredConfig",
    "TrainConfig",
    "UnstructuredConfig",
    "UnsupportedOpError",
    "__version__",
    "compress",
    "count_macs",
    "create_model",
    "distill",
    "evaluate_accuracy",
    "load",
    "load_data",
    "load_weights",
    "profile",
    "prune",
    "read_spec",
    "save",
    "search_sparsity",
    "slim",
    "train",
]
