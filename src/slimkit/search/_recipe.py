"""Recipes: a YAML file that states a compress run explicitly, with ``key=value`` overrides.

    model: references/seed-cnn.safetensors   # a slimkit artifact
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

from ..data import check_data_args, load_data
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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"recipe {path} does not exist; pass the path of a recipe file") from None
    except IsADirectoryError:
        raise ValueError(f"recipe {path} is a directory; pass the path of a recipe file") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"recipe {path} is not a UTF-8 text file ({err.reason})") from None
    except OSError as err:
        raise ValueError(f"recipe {path} cannot be read ({err.strerror or err})") from None


def _parse(text: str, source: str) -> Any:
    """YAML, or a ``ValueError`` naming ``source`` and where the syntax breaks."""
    yaml = _yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ValueError(f"{source} is not valid YAML{where}: {problem}; fix its syntax") from None


#: The kind of each top-level value: (accepted types, how the message names them).
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "the path of an artifact"),
    "out": ((str,), "the path of the run directory"),
    "storage": ((str, type(None)), "an Optuna storage URL"),
    "device": ((str,), "a device name such as cpu or cuda"),
    "data": ((dict, type(None)), "a mapping of load_data arguments, e.g. {name: fashion-mnist}"),
    "compress": ((dict, type(None)), "a mapping of CompressConfig fields, e.g. {trials: 4}"),
}


def _check_kinds(path: str | Path, tree: dict[str, Any]) -> None:
    for key, (kinds, what) in _KINDS.items():
        if key in tree and not isinstance(tree[key], kinds):
            raise ValueError(
                f"{path}: {key!r} must be {what}, got {type(tree[key]).__name__} {tree[key]!r}"
            )


def _set(tree: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = _parse(raw, f"override {dotted}={raw}")


def _check_keys(section: str, given: dict[str, Any], valid: set[str]) -> None:
    unknown = sorted(set(given) - valid)
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {section}; valid keys: {', '.join(sorted(valid))}"
        )


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file and apply ``key=value`` overrides (dotted keys for sections).

    Raises:
        ValueError: for a missing or unreadable file, malformed YAML, unknown keys, values
            of the wrong kind or a malformed override.
    """
    tree = _parse(_read(Path(path)), str(path)) or {}
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
    _check_kinds(path, tree)
    data = dict(tree.get("data") or {"name": "fashion-mnist"})
    _check_keys(f"{path} data", data, set(inspect.signature(load_data).parameters))
    check_data_args(**data)
    compress = CompressConfig.from_dict(dict(tree.get("compress") or {}))
    return Recipe(
        model=str(tree["model"]),
        out=str(tree["out"]),
        data=data,
        storage=tree.get("storage"),
        device=str(tree.get("device", "auto")),
        compress=compress,
    )
