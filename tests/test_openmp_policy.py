"""slimkit asks OpenMP for passive waiting, unless the user said otherwise or torch came first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os, slimkit; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(
    ("given", "code", "expected"),
    [
        (None, SHOW, "PASSIVE"),
        ("ACTIVE", SHOW, "ACTIVE"),
        (None, "import torch; " + SHOW, "None"),  # too late for libgomp: left alone
    ],
)
def test_wait_policy(given: str | None, code: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected
