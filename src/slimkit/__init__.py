"""slimkit: make PyTorch models smaller and faster while keeping their accuracy."""

import os as _os
import sys as _sys

# OpenMP threads that spin between parallel regions take the cores ONNX Runtime (and the
# next eager call) need when several models are timed in one process. On 2 cores, seed-cnn
# at batch 64 ran 4.7 ms eager / 0.84 ms ONNX Runtime with passive waiting, 6.2 / 1.1 ms
# without; training speed did not change. libgomp reads this once, when torch loads: it only
# applies when slimkit is imported first, and an explicit setting wins.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import report as _report  # noqa: F401  (registers the compress report writer)
from ._config import ConfigBase
from ._version import __version__
from .data import Splits, load_data
from .distill import (
    AttentionTransfer,
    DecoupledKD,
    DistillConfig,
    HintKD,
    LogitKD,
    distill,
    slim,
)
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
from .quantize import Int8StaticConfig, QATConfig, quantize
from .search import CompressConfig, compress
from .train import TrainConfig, train

__all__ = [
    "AGP",
    "AccuracyBudgetError",
    "ArtifactError",
    "AttentionTransfer",
    "CompressConfig",
    "ConfigBase",
    "DataError",
    "DecoupledKD",
    "DistillConfig",
    "Global",
    "HintKD",
    "Int8StaticConfig",
    "LogitKD",
    "ModelError",
    "OneShot",
    "PerLayer",
    "Profile",
    "PruningTargetError",
    "QATConfig",
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
    "quantize",
    "read_spec",
    "save",
    "search_sparsity",
    "slim",
    "train",
]
