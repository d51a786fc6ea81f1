"""Human-readable tables and JSON output for the CLI."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..measure._profile import PROFILE_ROWS as _ROWS

#: What ``slimkit`` exits with: success, a bad model/data/artifact, a bad argument, a budget no
#: candidate met, Ctrl-C.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def profile_table(names: Sequence[str], profiles: Sequence[dict[str, Any]]) -> str:
    """A metric-per-row table with one column per model, plus a ratio column for two models."""
    header = ["metric", *names]
    ratio = len(profiles) == 2
    if ratio:
        header.append("after / before")
    rows = [header]
    for key, label, fmt in _ROWS:
        row = [label, *(_cell(p.get(key), fmt) for p in profiles)]
        if ratio:
            before, after = profiles[0].get(key), profiles[1].get(key)
            row.append(f"{after / before:.3f}×" if before and after is not None else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``--json``, ``--quiet`` and ``--debug``: every command takes them."""
    parser.add_argument(
        "--json",
        action="store_true",
        help='print one JSON result on stdout; a failure prints {"error": {"type", "message", '
        '"exit_code"}} there instead',
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or progress messages on stderr; the result is still printed",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def log(args: argparse.Namespace, message: str) -> None:
    """A progress message: on stderr, so that ``--json`` output on stdout stays parseable, and
    not at all under ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_error_json(kind: str, message: str, exit_code: int) -> None:
    """The failure as one JSON object on stdout, where ``--json`` readers look:
    ``{"error": {"type": ..., "message": <one line>, "exit_code": ...}}``."""
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    print_json({"error": {"type": kind, "message": line, "exit_code": exit_code}})
