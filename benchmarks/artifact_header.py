"""Header and file size of an artifact, and of the same model saved again by this slimkit.

Measures what the packed format (version 4) saves on an artifact written before it:

    python benchmarks/artifact_header.py runs/bench-compress/resnet56-size/trials-2/0002/model.safetensors
"""

from __future__ import annotations

import argparse
import struct
import tempfile
from pathlib import Path

import slimkit


def header_bytes(path: Path) -> int:
    """The safetensors header: an 8-byte length, then that many bytes of JSON."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    return 8 + length


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        again = slimkit.save(slimkit.load(args.artifact), Path(tmp) / "again.safetensors")
        rows = [("as stored", args.artifact), ("saved again", again)]
        for label, path in rows:
            spec = slimkit.read_spec(path)
            print(
                f"{label:12s} format {spec['format_version']}: {path.stat().st_size:,} B, "
                f"header {header_bytes(path):,} B"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
