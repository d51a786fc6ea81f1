"""A distillation's progress on disk, so that a killed run continues where it stopped.

A checkpoint is a folder: the student's tensors (``student.safetensors``), the optimiser's
state (``optimizer.safetensors``: every per-parameter tensor; its scalars and parameter groups
in the JSON), and ``progress.json`` (steps taken, the position in the current epoch, the losses
so far, the wall time spent, and the key that must match for the run to continue). It is
written beside its place and renamed into it, so a kill while writing leaves the previous one.
No pickle: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

STUDENT = "student.safetensors"
OPTIMIZER = "optimizer.safetensors"
PROGRESS = "progress.json"


@dataclass
class Progress:
    """Where a distillation stands.

    Attributes:
        key: what the run must share with the one that wrote the checkpoint to continue it
            (the config, the sentences' checksum, the total steps, the student's shapes).
        steps: optimiser steps taken.
        epoch: the epoch under way.
        position: batches done in that epoch.
        losses: the loss of each step of that epoch so far.
        epoch_loss: the mean loss of each finished epoch.
        seconds: wall time spent distilling, over every run that contributed.
        resumed_at: the step counts this distillation was resumed at.
        finished: the distillation ran to its end (or its time limit).
        stopped_early: it ended at its time limit.
    """

    key: dict[str, Any]
    steps: int = 0
    epoch: int = 0
    position: int = 0
    losses: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_at: list[int] = field(default_factory=list)
    finished: bool = False
    stopped_early: bool = False


def progress_key(
    config: dict[str, Any], texts: Sequence[str], total: int, student: nn.Module
) -> dict[str, Any]:
    """The identity of a distillation: its config, a SHA-256 of its sentences in order, its
    total steps and the student's tensor shapes (a differently pruned student cannot load)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    shapes = {name: list(t.shape) for name, t in student.state_dict().items()}
    shapes_digest = hashlib.sha256(json.dumps(shapes, sort_keys=True).encode()).hexdigest()
    return {
        "config": config,
        "texts_sha256": digest.hexdigest(),
        "total_steps": total,
        "shapes_sha256": shapes_digest,
    }


def save_checkpoint(
    folder: str | os.PathLike[str],
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
) -> None:
    """Write ``folder`` (replacing the checkpoint there, atomically)."""
    folder = Path(folder)
    temp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    save_model(student, str(temp / STUDENT))
    tensors, rest = _optimizer_parts(optimizer)
    save_file(tensors, str(temp / OPTIMIZER))
    (temp / PROGRESS).write_text(
        json.dumps({"progress": asdict(progress), "optimizer": rest}, indent=1), encoding="utf-8"
    )
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    temp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    folder: str | os.PathLike[str],
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    key: dict[str, Any],
) -> Progress | None:
    """Restore ``student`` and ``optimizer`` from ``folder`` and return its progress; None
    (nothing changed) when there is no checkpoint or it belongs to another distillation."""
    folder = Path(folder)
    path = folder / PROGRESS
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        progress = Progress(**saved["progress"])
    except (ValueError, TypeError, KeyError):
        return None
    if progress.key != key:
        return None
    has_optimizer = (folder / OPTIMIZER).is_file()
    if not (has_optimizer or progress.finished):  # continuing needs the optimiser's state
        return None
    load_model(student, str(folder / STUDENT), strict=True)
    if not has_optimizer:
        return progress
    optimizer.load_state_dict(_optimizer_state(load_file(str(folder / OPTIMIZER)), saved))
    return progress


def drop_optimizer(folder: str | os.PathLike[str]) -> None:
    """Delete the optimiser's state of a finished distillation's checkpoint (the largest file;
    continuing needs it, reloading the trained student does not)."""
    folder = Path(folder)
    path = folder / PROGRESS
    if path.is_file() and json.loads(path.read_text(encoding="utf-8"))["progress"]["finished"]:
        (folder / OPTIMIZER).unlink(missing_ok=True)


def remove_checkpoint(folder: str | os.PathLike[str]) -> None:
    """Delete the checkpoint in ``folder`` (and what an interrupted write left beside it)."""
    folder = Path(folder)
    for path in (
        folder,
        folder.with_name(folder.name + ".tmp"),
        folder.with_name(folder.name + ".old"),
    ):
        shutil.rmtree(path, ignore_errors=True)


def _optimizer_parts(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimiser's state as named tensors (``"<param index>.<name>"``) and the rest
    (scalars and parameter groups) as JSON-ready values."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict[str, Any]:
    """The optimiser state dict :func:`_optimizer_parts` took apart."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *saved["optimizer"]["scalars"].items()]:
        index, attribute = name.split(".", 1)
        state.setdefault(int(index), {})[attribute] = value
    return {"state": state, "param_groups": saved["optimizer"]["param_groups"]}
