"""The ``slimkit`` command line."""

from __future__ import annotations

import sys

from ._main import build_parser
from ._main import main as _main

__all__ = ["build_parser", "main"]


def main() -> None:
    """Console-script entry point."""
    sys.exit(_main())
