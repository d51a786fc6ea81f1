"""Recipes: a YAML file that states a compress run explicitly, with ``key=value`` overrides.

    model: runs/demo/seed-cnn.safetensors   # a slimkit artifact
    data: {name: fashion-mnist}             # load_data() keyword arguments
    out: runs/compress-seed-cnn             # the run directory
    compress:                               # CompressConfig fields
      max_drop: 0.5
      goal: latency

Unknown keys are errors that list the valid ones; ``compress.trials=4`` overrides a value.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import load_data
from ._config import CompressConfig

TOP_KEYS = {"model", "data", "out", "storage", "device", "compress"}


@dataclass(frozen=True, kw_only=True)
class Recipe:
    model: str
    out: str
    data: dict[str, Any] = field(default_factory=lambda: {"name": "fashion-mnist"})
    storage: str | None = None
    device: str = "auto"
    compress: CompressConfig = field(default_factory=CompressConfig)


def _yaml() -> Any:
    import yaml

    return yaml


def _set(tree: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = _yaml().safe_load(raw)


def _check_keys(section: str, given: dict[str, Any], valid: set[str]) -> None:
    unknown = sorted(set(given) - valid)
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {section}; valid keys: {', '.join(sorted(valid))}"
        )


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file and apply ``key=value`` overrides (dotted keys for sections).

    Raises:
        ValueError: for unknown keys, bad values or a malformed override.
        FileNotFoundError: if the file does not exist.
    """
    tree = _yaml().safe_load(Path(path).read_text()) or {}
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: a recipe is a mapping of {sorted(TOP_KEYS)}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value (e.g. compress.trials=4)")
        _set(tree, key.strip(), value)
    _check_keys(str(path), tree, TOP_KEYS)
    for required in ("model", "out"):
        if required not in tree:
            raise ValueError(f"{path}: the recipe needs {required!r}")
    data = dict(tree.get("data") or {"name": "fashion-mnist"})
    _check_keys(f"{path} data", data, set(inspect.signature(load_data).parameters))
    compress = CompressConfig.from_dict(dict(tree.get("compress") or {}))
    return Recipe(
        model=str(tree["model"]),
        out=str(tree["out"]),
        data=data,
        storage=tree.get("storage"),
        device=str(tree.get("device", "auto")),
        compress=compress,
    )
