"""The CPU a measurement ran on, and the int8 features its speed depends on."""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

#: cpuinfo flags that change how fast int8 products run (VNNI: one instruction per u8·s8
#: dot product; without it they go through 16-bit multiplies), and AMX's tile units.
_FEATURES = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "vnni": ("avx512_vnni", "avx_vnni"),
    "amx": ("amx_int8",),
}


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    name, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return name or platform.machine(), flags


@functools.cache
def cpu_info() -> dict[str, Any]:
    """This machine's CPU: ``{"name", "avx2", "avx512", "vnni", "amx", "cores"}``.

    Example:
        >>> cpu_info()["vnni"]
        True
    """
    import os

    name, flags = _cpuinfo()
    info: dict[str, Any] = {"name": name}
    for feature, names in _FEATURES.items():
        info[feature] = any(n in flags for n in names)
    info["cores"] = os.cpu_count()
    return info
