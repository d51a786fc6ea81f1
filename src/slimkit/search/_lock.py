"""One ``compress`` process per run directory: an exclusive lock on ``RUN_DIR/lock``.

Two ``compress --resume`` processes on one live run would both redo the stages after the last
finished one (sensitivity, plan) and race to write them. The second is refused with the
first one's PID and host; more processes join a run's search as ``slimkit worker``, which
takes no lock.

The lock is ``flock`` on an open file: the kernel drops it when its process dies, however it
dies, so a lock file left by a dead process is no obstacle (its content, the last holder, is
overwritten). On NFS, Linux maps ``flock`` to the server's byte-range locks, which hold across
hosts. Where ``fcntl`` does not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import SlimkitError

LOCK_NAME = "lock"


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``run_dir``'s lock while the body runs (creating ``run_dir`` if needed).

    Raises:
        SlimkitError: if another live process holds it (naming its PID and host), or
            ``run_dir`` cannot be created.
    """
    path = Path(run_dir)
    lock = path / LOCK_NAME
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise SlimkitError(
            f"cannot write the run directory {path} ({err.strerror or err}); pass another --out"
        ) from None
    try:
        if not _try_lock(fd):
            raise SlimkitError(
                f"{path} is in use by {_holder(lock)}; wait for it to finish, or join its search "
                f"from another process with `slimkit worker {path}`"
            )
        _write_holder(fd)
        yield lock
    finally:
        os.close(fd)  # closing the file drops the lock


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(record).encode())


def _holder(lock: Path) -> str:
    """Who holds ``lock``, as its holder wrote it."""
    try:
        record = json.loads(lock.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record["since"])))
        return f"pid {int(record['pid'])} on host {record['host']} (since {since})"
    except (OSError, ValueError, KeyError, TypeError):  # written this instant, or damaged
        return "another process"
