"""Atomic file output: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        # Writers such as safetensors recreate the file as 0600; give it open()'s usual mode.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy ``source`` to ``target`` atomically: a reader sees the old file or the whole copy."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks (artifacts may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def refuse_overwrite(inputs: list[Path], out: Path, what: str) -> None:
    """Refuse an output path that is one of the inputs under another name (a relative path, a
    symlink, a hard link): the input is never overwritten.

    Raises:
        ValueError: naming the output, the input and what to do instead.
    """
    for source in inputs:
        same = source.resolve() == out.resolve()
        if not same and source.exists() and out.exists():
            same = os.path.samefile(source, out)
        if same:
            raise ValueError(
                f"--out {out} is the input artifact {source}; it would be overwritten: write "
                f"the {what} to another file"
            )


def check_writable(out: str | os.PathLike[str], *, directory: bool = False) -> None:
    """Refuse an ``--out`` that cannot be written, before any work is done for it.

    ``out`` is a file to write, or with ``directory`` a directory to write into (a run
    directory). Missing directories on its way are created later; the nearest one that exists
    must be a directory this process can create files in (tried, not guessed from modes).

    Raises:
        ValueError: naming the path, what is wrong and what to pass instead.
    """
    target = Path(out)
    if target.exists():
        if directory and not target.is_dir():
            raise ValueError(
                f"--out {out} is an existing file; it names the run directory to write: pass "
                "a directory path"
            )
        if not directory and target.is_dir():
            raise ValueError(f"--out {out} is a directory; pass a file path inside it")
    place = target if directory and target.is_dir() else target.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise ValueError(
            f"--out {out} cannot be written: {place} is a file, not a directory; pass an --out "
            "in a writable directory"
        )
    probe = place / f".slimkit-write-test.{secrets.token_hex(8)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as err:
        raise ValueError(
            f"--out {out} cannot be written: {place} does not accept new files "
            f"({err.strerror or err}); pass an --out in a writable directory"
        ) from None
    probe.unlink()
