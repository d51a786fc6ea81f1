"""Move Hugging Face model directories between machines as their difference from a reference.

A student distilled with a frozen embedding table shares most of its bytes with its teacher.
``pack`` writes, for each directory, only the files and tensors that differ from the reference
directory (bit for bit), tars them and splits the tar into chunks; ``unpack`` joins the chunks and
restores full directories from the same reference. Used to bring students trained on a GPU
machine back through a transfer limit (scripts/gpu_minilm.sh).

    python scripts/delta_pack.py pack REF DIR [DIR ...] --out CHUNK_DIR [--chunk-mb 15]
    python scripts/delta_pack.py unpack REF CHUNK_DIR --into PARENT
"""

from __future__ import annotations

import argparse
import filecmp
import io
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
DELTA = "model.delta.safetensors"
MANIFEST = "delta.json"
CHUNK = "delta.tar."


def pack(reference: Path, directories: list[Path], out: Path, chunk_mb: float) -> list[Path]:
    """Write the chunks of a tar holding each directory's difference from ``reference``."""
    ref_tensors = load_file(reference / WEIGHTS)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in directories:
            stage = Path(tmp) / directory.name
            stage.mkdir()
            manifest = _stage(reference, ref_tensors, directory, stage)
            (stage / MANIFEST).write_text(json.dumps(manifest, indent=1))
            tar.add(stage, arcname=directory.name)
    out.mkdir(parents=True, exist_ok=True)
    data, size = buffer.getvalue(), int(chunk_mb * 2**20)
    chunks = []
    for index, start in enumerate(range(0, len(data), size)):
        chunks.append(out / f"{CHUNK}{index:03d}")
        chunks[-1].write_bytes(data[start : start + size])
    return chunks


def _stage(
    reference: Path, ref_tensors: dict[str, torch.Tensor], directory: Path, stage: Path
) -> dict[str, list[str]]:
    same_files, same_tensors = [], []
    for folder in (p for p in directory.rglob("*") if p.is_dir()):
        (stage / folder.relative_to(directory)).mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory)
        if relative == Path(WEIGHTS):
            tensors = load_file(path)
            kept = {}
            for name, value in tensors.items():
                ref = ref_tensors.get(name)
                if ref is not None and ref.dtype == value.dtype and torch.equal(ref, value):
                    same_tensors.append(name)
                else:
                    kept[name] = value
            save_file(kept, stage / DELTA)
        elif (reference / relative).is_file() and filecmp.cmp(
            path, reference / relative, shallow=False
        ):
            same_files.append(str(relative))
        else:
            (stage / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, stage / relative)
    return {"same_files": same_files, "same_tensors": same_tensors}


def unpack(reference: Path, chunk_dir: Path, parent: Path) -> list[Path]:
    """Rebuild the packed directories under ``parent``; their paths."""
    chunks = sorted(chunk_dir.glob(f"{CHUNK}*"))
    if not chunks:
        raise SystemExit(f"no {CHUNK}NNN chunks in {chunk_dir}")
    data = b"".join(c.read_bytes() for c in chunks)
    ref_tensors = load_file(reference / WEIGHTS)
    parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = sorted({m.name.split("/")[0] for m in tar.getmembers()})
        tar.extractall(parent, filter="data")
    rebuilt = []
    for name in names:
        directory = parent / name
        manifest = json.loads((directory / MANIFEST).read_text())
        tensors = load_file(directory / DELTA)
        tensors.update({k: ref_tensors[k] for k in manifest["same_tensors"]})
        save_file(tensors, directory / WEIGHTS, metadata={"format": "pt"})
        for file in manifest["same_files"]:
            (directory / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(reference / file, directory / file)
        (directory / DELTA).unlink()
        (directory / MANIFEST).unlink()
        rebuilt.append(directory)
    return rebuilt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("reference", type=Path)
    p.add_argument("directories", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--chunk-mb", type=float, default=15.0)
    u = sub.add_parser("unpack")
    u.add_argument("reference", type=Path)
    u.add_argument("chunks", type=Path)
    u.add_argument("--into", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "pack":
        for chunk in pack(args.reference, args.directories, args.out, args.chunk_mb):
            print(f"{chunk} {chunk.stat().st_size} B")
    else:
        for directory in unpack(args.reference, args.chunks, args.into):
            print(f"rebuilt {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
