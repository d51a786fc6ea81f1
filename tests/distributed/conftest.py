"""A throwaway PostgreSQL server (the Debian package's binaries) on a free local port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql")
HINT = (
    "install it with `apt-get install -y postgresql` (the distributed tests start their own server)"
)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(PG_BIN.glob(f"*/bin/{name}"))
    if not candidates:
        pytest.fail(f"PostgreSQL's {name} was not found; {HINT}", pytrace=False)
    return str(candidates[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package creates the `postgres` user.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="slimkit-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    run = lambda cmd: subprocess.run(  # noqa: E731
        _as_server_user(cmd), check=True, capture_output=True, text=True, timeout=120
    )
    run([_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "slimkit", "--no-sync"])
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    run([_binary("pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"])
    try:
        run([_binary("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "slimkit", "study"])
        yield f"postgresql+psycopg2://slimkit@127.0.0.1:{port}/study"
    finally:
        subprocess.run(
            _as_server_user([_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)
