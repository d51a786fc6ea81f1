"""Human-readable tables and JSON output for the CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from ..measure._profile import PROFILE_ROWS as _ROWS


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


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
