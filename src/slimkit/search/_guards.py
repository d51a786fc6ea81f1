"""What a run directory is tied to, and what a worker may take from it.

A run directory outlives the command that started it: it is resumed later, maybe with another
model or other data, and shared with workers, maybe by anyone who can write into it. Its
baseline and every drop measured against it hold only for the input it started on; and the
settings in it that name code (``module:function``) run in a worker only when the worker's own
command line allows them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import sha256_file
from ..data import DATASETS
from ..errors import SlimkitError

#: Data arguments that say where the data lives, not which data it is.
LOCATION_KEYS = ("data_dir",)
#: Hex digits of a hash shown in a message.
SHORT = 12


@dataclass(frozen=True)
class RunInput:
    """The model and the data a run measures.

    Attributes:
        sha256: of the artifact file the model was read from, or of the model's tensors
            (names, dtypes, shapes and bytes) when it was given without a file.
        data: the data's identity: its load arguments but where they live (``data_dir``) and
            those left unset: the name (the folder of ``folder:`` data, the hook of
            ``module:function`` data), limits, image size.
        artifact: the artifact's path, for messages only: a copy of it is the same input.
    """

    sha256: str
    data: dict[str, Any]
    artifact: str | None = None

    @classmethod
    def of(
        cls,
        model: nn.Module,
        data_args: dict[str, Any],
        artifact: str | os.PathLike[str] | None = None,
    ) -> RunInput:
        data = {k: v for k, v in data_args.items() if v is not None and k not in LOCATION_KEYS}
        data = json.loads(json.dumps(data, sort_keys=True, default=str))  # as state.json has it
        if artifact is None:
            return cls(tensors_sha256(model), data)
        return cls(sha256_file(artifact), data, str(artifact))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> RunInput:
        return cls(record["sha256"], dict(record["data"]), record.get("artifact"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        model = (
            f"{self.artifact} (sha256 {self.sha256[:SHORT]})"
            if self.artifact
            else f"a model given in memory (tensors sha256 {self.sha256[:SHORT]})"
        )
        data = ", ".join(f"{key}={value}" for key, value in self.data.items())
        return f"{model} with data {data}"

    def check_continues(self, saved: RunInput, run_dir: Path) -> None:
        """Raise :class:`SlimkitError` unless this is the input ``run_dir`` started on."""
        if (self.sha256, self.data) != (saved.sha256, saved.data):
            raise SlimkitError(
                f"{run_dir} was started on {saved.describe()}, not on {self.describe()}; its "
                "baseline and results hold for that input only: pass another --out for a new "
                "run, or the same input to continue this one"
            )


def tensors_sha256(model: nn.Module) -> str:
    """The SHA-256 of a model's state: each tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{list(tensor.shape)}|".encode())
        if flat.numel():  # as bytes: numpy has no bfloat16
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def code_settings(config: dict[str, Any]) -> dict[str, str]:
    """The settings of a run's saved configuration that name code a worker would import:
    ``module:function`` data and a metric."""
    found: dict[str, str] = {}
    name = (config.get("data") or {}).get("name")
    if isinstance(name, str) and _is_hook(name):
        found["data"] = name
    metric = (config.get("compress") or {}).get("metric")
    if isinstance(metric, str):
        found["metric"] = metric
    return found


def _is_hook(name: str) -> bool:
    return ":" in name and not name.startswith("folder:") and name not in DATASETS


def check_run_code(
    config: dict[str, Any], state_path: Path, *, allowed: Collection[str], trust: bool
) -> None:
    """Refuse code named by a shared run directory unless the worker's own command line
    names it too (``allowed``) or trusts the run directory (``trust``).

    Raises:
        SlimkitError: naming the setting, its code and the options that allow it.
    """
    if trust:
        return
    for setting, name in code_settings(config).items():
        if name not in allowed:
            raise SlimkitError(
                f"{state_path} names the {setting} {name!r}: a worker would import and run "
                f"module {name.partition(':')[0]!r} because the run directory says so; pass "
                f"--{setting} {name} if you trust it, or --trust-run-code to trust the run "
                "directory's code"
            )
