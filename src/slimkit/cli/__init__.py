"""The ``slimkit`` command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._main import build_parser
from ._main import main as _main

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run ``slimkit ARGV`` (default: the process's arguments)
    and exit with its code (0 ok, 1 error, 2 bad usage, 3 budget not met, 130 interrupted)."""
    sys.exit(_main(argv))
