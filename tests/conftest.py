"""Shared fixtures. Real data comes from the installed Fashion-MNIST; a missing dataset fails
the tests that need it (with the command that installs it) instead of silently skipping them."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from slimkit import DataError, Splits, load_data
from slimkit.testing import MISSING_DATA_HINT, fashion_mnist_slice

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # The models here are tiny: threads gain nothing, and on a busy machine OpenMP threads
    # waiting for each other make a training step many times slower.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Tests that draw random tensors draw the same ones on every run."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def fmnist_full() -> Splits:
    """All of Fashion-MNIST: 55,000 train, 5,000 val, 10,000 test."""
    try:
        return load_data("fashion-mnist")
    except DataError as err:
        pytest.fail(f"{err}; {MISSING_DATA_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def fmnist() -> Splits:
    """A small real slice: 512 train, 256 val and 256 test examples."""
    try:
        return fashion_mnist_slice(limit_train=512, limit_eval=256)
    except DataError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def load_script() -> Callable[[str], ModuleType]:
    """Import a repository script (``scripts/x.py``, ``benchmarks/x.py``) afresh as a module."""

    def load(relative: str) -> ModuleType:
        path = REPO / relative
        name = f"_{path.parent.name}_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # a script's dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load
