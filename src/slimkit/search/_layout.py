"""Which run directories this slimkit reads: its own layout, and no older one.

A run directory outlives the version that wrote it. Rather than reading an older layout's
files as if they were current (a plan that names its cut differently, a config without a knob
whose default has changed since), a run of another layout is refused with one line that says
what to do: start a new run, or finish that one with the version that wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ._config import CompressConfig

#: The layout this slimkit writes into ``state.json`` (``"layout"``) and reads. Bump it when
#: a stage's output, a record's keys or a knob's meaning change; a knob added later with a
#: default that keeps the old behaviour needs no bump (a saved config without it reads as
#: that default), nor does a knob renamed or regrouped: the config reads its own older
#: layouts (``CompressConfig.VERSION``, :meth:`~slimkit.ConfigBase.upgrade`). Layout 1 was never written: it is the form slimkit wrote before the stamp,
#: recognised by :func:`_unstamped_problem`.
LAYOUT = 2

#: What the plan stage of the current layout always records.
_PLAN_KEYS = ("initial_keep", "int8_keep_float")


def older_layout(path: str | Path, why: str) -> ArtifactError:
    """The one-line error for a run directory file of an older layout (``why`` says how)."""
    return ArtifactError(
        f"{path} was written by an older slimkit ({why}); start a new run with another "
        "--out, or finish this one with the slimkit version that wrote it"
    )


def check_layout(state: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`ArtifactError` unless ``state`` (read from ``path``) is of this layout.

    A state without a stamp is accepted when it has the form the last unstamped version
    wrote, which is this layout.
    """
    layout = state.get("layout")
    if layout == LAYOUT:
        return
    if layout is not None:
        raise ArtifactError(
            f"{path} holds a run of layout {layout!r}, this slimkit reads layout {LAYOUT}; "
            "start a new run with another --out, or finish this one with the slimkit version "
            "that wrote it"
        )
    problem = _unstamped_problem(state)
    if problem is not None:
        raise older_layout(path, problem)


def _unstamped_problem(state: dict[str, Any]) -> str | None:
    """How an unstamped ``state`` differs from the last unstamped layout (None: it does not)."""
    stages = state["stages"]
    if "input" not in state:
        return "no input recorded"
    if stages and "study" not in state:
        return "no study recorded"
    compress = state.get("config", {}).get("compress")
    if not isinstance(compress, dict):
        return "no compress configuration"
    try:  # the configuration migrates its own older layouts (ConfigBase.upgrade)
        compress = CompressConfig.upgraded(compress)
    except ValueError as err:
        return f"its configuration does not read: {err}"
    missing = sorted(set(CompressConfig.__dataclass_fields__) - set(compress))
    if missing:
        return f"its configuration has no {', '.join(missing)}"
    if "int8_keep_float" in _output(stages, "sensitivity"):
        return "the first-layer probe is kept with the sensitivity curves"
    plan = _output(stages, "plan")
    if "plan" in stages and not all(key in plan for key in _PLAN_KEYS):
        return f"its plan records no {' or '.join(k for k in _PLAN_KEYS if k not in plan)}"
    return None


def _output(stages: dict[str, Any], name: str) -> dict[str, Any]:
    stage = stages.get(name)
    output = stage.get("output") if isinstance(stage, dict) else None
    return output if isinstance(output, dict) else {}
