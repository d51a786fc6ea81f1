"""Training checkpoints in safetensors: model and optimizer tensors plus JSON for the rest."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .._io import atomic_path
from ..errors import ArtifactError, ModelError
from ..export import load_state
from ..models import arch_of

_KEY = "slimkit_checkpoint"


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
) -> None:
    """Write model + optimizer state and ``info`` (epoch, config, history) atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = _split_optimizer_state(optimizer.state_dict())
    tensors.update(optim_tensors)
    meta = {**info, "arch": arch_of(model), "optimizer": optim_meta}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_KEY: json.dumps(meta)})


def load_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model and optimizer from ``path`` and return the saved ``info``.

    Raises:
        ArtifactError: if the checkpoint is unreadable.
        ModelError: if it was written for another architecture.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[_KEY])
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as err:
        raise ArtifactError(
            f"cannot read training checkpoint {path} ({err}); delete it to start over"
        ) from None
    if meta["arch"] != arch_of(model):
        raise ModelError(
            f"checkpoint {path} was written for {meta['arch']}, not {arch_of(model)}; "
            "pass the matching --model or delete the checkpoint"
        )
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    load_state(model, model_state, str(path))
    optim_tensors = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    optimizer.load_state_dict(_join_optimizer_state(optim_tensors, meta.pop("optimizer")))
    restored: dict[str, Any] = meta
    return restored
