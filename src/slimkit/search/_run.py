"""The run directory: one JSON state file, written atomically after every stage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._io import atomic_path
from ..errors import SlimkitError
from ._guards import RunInput
from ._layout import LAYOUT, check_layout

STAGES = (
    "baseline",
    "sensitivity",
    "plan",
    "recovery",
    "search",
    "polish",
    "verify",
    "export",
    "report",
)

#: What a stage's output depends on: ``inputs(config, stage)`` for a run's saved config.
StageInputs = Callable[[dict[str, Any], str], Any]


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=_jsonable))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_state(path: Path) -> dict[str, Any]:
    """A run's ``state.json``; a damaged one is a :class:`SlimkitError` naming the file, one
    of another layout an :class:`~slimkit.errors.ArtifactError` (see :mod:`._layout`)."""
    try:
        state = read_json(path)
        if not isinstance(state, dict) or not isinstance(state.get("stages"), dict):
            raise ValueError("not a run state: no mapping of stages")
        if not isinstance(state.get("config", {}), dict):
            raise ValueError("its config is not a mapping")
        if "input" in state:
            RunInput.from_dict(state["input"])
    except (OSError, ValueError, RecursionError, KeyError, TypeError) as err:
        problem = " ".join(str(err).split()) or type(err).__name__
        raise SlimkitError(
            f"{path} is corrupted ({problem}); restore it, or start a new run with another --out"
        ) from None
    check_layout(state, path)
    return state


def _plain(value: Any) -> Any:
    """``value`` as it reads back from ``state.json`` (tuples as lists), for comparisons."""
    return json.loads(json.dumps(value, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class RunDir:
    """``RUN_DIR/state.json``: the config, the data, and each finished stage's outputs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.state_path = self.path / "state.json"
        self.state: dict[str, Any] = {"stages": {}}
        #: Finished stages dropped because a resumed run changed their inputs.
        self.redone: list[str] = []
        #: The configuration the run directory held before this call (None for a new run).
        self.saved_config: dict[str, Any] | None = None
        #: What each stage's output depends on; recorded with the stage when it finishes.
        self.inputs: StageInputs | None = None

    @classmethod
    def create(
        cls,
        path: str | Path,
        config: dict[str, Any],
        resume: bool,
        inputs: StageInputs | None = None,
        given: RunInput | None = None,
    ) -> RunDir:
        """Start a run in ``path``, or with ``resume`` continue the one there.

        A run resumed with another configuration keeps the finished stages whose inputs
        (``inputs(config, stage)``) are unchanged and redoes the first changed one and every
        stage after it; :attr:`redone` names them. Without ``inputs`` a changed configuration
        is an error. A run started on another model or data than ``given`` is an error, with
        or without ``resume``.
        """
        run = cls(path)
        run.inputs = inputs
        if run.state_path.exists():
            run.state = read_state(run.state_path)
            run._check_input(given)
            if not resume:
                raise SlimkitError(
                    f"{run.path} already holds a compress run; pass --resume to continue it "
                    "or choose another --out directory"
                )
            run.state["layout"] = LAYOUT  # saved with the next change
            saved = run.saved_config = run.state.get("config")
            if saved != config and (inputs is None or saved is None):
                raise SlimkitError(
                    f"{run.path} was started with another configuration; resume it with the "
                    f"same options or start a new run directory (saved: {saved})"
                )
            if inputs is not None and saved is not None:
                # Even an unchanged configuration may resolve otherwise (a default that
                # changed between versions): each stage is checked against what it ran with.
                run.redone = run._invalidate(saved, config, inputs)
                if saved != config or run.redone:
                    run.state["config"] = config
                    run.save()
        else:
            run.state = {"layout": LAYOUT, "config": config, "stages": {}}
            if given is not None:
                run.state["input"] = given.to_dict()
            run.path.mkdir(parents=True, exist_ok=True)
            run.save()
        return run

    def _check_input(self, given: RunInput | None) -> None:
        if given is None:
            return
        if "input" in self.state:
            given.check_continues(RunInput.from_dict(self.state["input"]), self.path)
        else:  # a run created without an input (``given=None``): tied from now on
            self.state["input"] = given.to_dict()

    def _invalidate(
        self, saved: dict[str, Any], config: dict[str, Any], inputs: StageInputs
    ) -> list[str]:
        for i, stage in enumerate(STAGES):
            record = self.state["stages"].get(stage, {})
            # A stage records the inputs it ran with; runs from before that are read back
            # from their saved configuration.
            before = record["inputs"] if "inputs" in record else _plain(inputs(saved, stage))
            if before != _plain(inputs(config, stage)):
                dropped = [s for s in STAGES[i:] if s in self.state["stages"]]
                for name in dropped:
                    del self.state["stages"][name]
                return dropped
        return []

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(path)
        if not run.state_path.exists():
            raise SlimkitError(f"{run.path} is not a compress run directory (no state.json)")
        run.state = read_state(run.state_path)
        return run

    def reload(self) -> None:
        self.state = read_state(self.state_path)

    def save(self) -> None:
        write_json(self.state_path, self.state)

    def done(self, stage: str) -> bool:
        return stage in self.state["stages"]

    def output(self, stage: str) -> dict[str, Any]:
        output: dict[str, Any] = self.state["stages"][stage]["output"]
        return output

    @contextmanager
    def stage(
        self, name: str, output: dict[str, Any], *, seconds: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Record ``output`` (filled by the body) and the stage's time once the body succeeds.

        ``seconds`` replaces the body's own time, for a stage whose work ran before the body
        (the search's trials, maybe in other processes).
        """
        start = time.time()
        yield output
        self.state["stages"][name] = {
            "seconds": round(time.time() - start if seconds is None else seconds, 2),
            "output": output,
        }
        if self.inputs is not None and "config" in self.state:
            self.state["stages"][name]["inputs"] = _plain(self.inputs(self.state["config"], name))
        self.save()

    def stage_times(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "seconds": self.state["stages"][name]["seconds"]}
            for name in STAGES
            if name in self.state["stages"]
        ]
