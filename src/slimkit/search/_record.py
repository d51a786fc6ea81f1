"""Trial records: what one candidate of the search was, and what it measured.

A record travels as JSON: a trial's Optuna user attributes, ``trials.json``,
``polished.json`` and the verify stage's output in ``state.json``. :meth:`TrialRecord.to_dict`
writes that form and :meth:`TrialRecord.from_dict` reads it; a key this layout does not know,
or one it needs that is missing, is an error (:meth:`TrialRecord.read_list` names the file).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._layout import older_layout

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def to_json(record: DataclassInstance, keys: dict[str, str] | None = None) -> dict[str, Any]:
    """``record``'s fields by JSON key (a field's name unless ``keys`` renames it), in field
    order; an optional field left at ``None`` is omitted, as the JSON has no such key."""
    keys = keys or {}
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if value is None and f.default is None:
            continue
        out[keys.get(f.name, f.name)] = value
    return out


def from_json(cls: type[D], data: dict[str, Any], keys: dict[str, str] | None = None) -> D:
    """The ``cls`` that :func:`to_json` wrote as ``data``.

    Raises:
        ValueError: naming the keys ``cls`` does not know, or the required ones missing.
    """
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} is a mapping, not {type(data).__name__}")
    keys = keys or {}
    by_key = {keys.get(f.name, f.name): f for f in fields(cls)}
    unknown = sorted(set(data) - set(by_key))
    if unknown:
        raise ValueError(f"{cls.__name__} has no {', '.join(map(repr, unknown))}")
    missing = [k for k, f in by_key.items() if k not in data and f.default is MISSING]
    if missing:
        raise ValueError(f"{cls.__name__} without {', '.join(map(repr, missing))}")
    return cls(**{f.name: data[key] for key, f in by_key.items() if key in data})


@dataclass(frozen=True, kw_only=True)
class Structure:
    """A trial's structured cut: the plan's ratios and what the pruned model keeps.

    Attributes:
        ratios: channel group (or residual block, at 1.0) → fraction removed.
        macs_fraction: of the original's MACs, kept.
        params_fraction: of its parameters, kept.
        latency_fraction: of its predicted latency, kept (the latency cost only).
        widths: output width of every conv/linear layer: what identifies the structure.
        removed_blocks: residual blocks removed whole (None: the model was not pruned).
    """

    ratios: dict[str, float]
    macs_fraction: float
    params_fraction: float
    latency_fraction: float | None = None
    widths: dict[str, int]
    removed_blocks: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Structure:
        return from_json(cls, data)


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """One way of deploying a trial's model, timed beside the others and scored.

    Attributes:
        precision: ``fp32`` or the int8 scheme (``int8-static, float: conv1``).
        runtime: the runtime that ran it.
        ms_b64: milliseconds at batch 64, timed interleaved with the other deployments.
        drop: its validation drop.
        ms_b1: milliseconds at batch 1, timed the same way (None in records that predate it).
    """

    precision: str
    runtime: str
    ms_b64: float
    drop: float
    ms_b1: float | None = None

    @property
    def speed_cost(self) -> float:
        """What the fastest deployment minimises: the geometric mean of its batch-1 and
        batch-64 times (batch 64 alone where batch 1 was not timed), so that a runtime fast
        at one batch size and slow at the other does not win."""
        return self.ms_b64 if self.ms_b1 is None else math.sqrt(self.ms_b1 * self.ms_b64)

    @property
    def label(self) -> str:
        """How a record names its deployment: ``int8-static (onnxruntime)``."""
        return f"{self.precision} ({self.runtime})"

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        return from_json(cls, data)


#: JSON keys that differ from the field's name (``params`` holds the Optuna knobs).
_KEYS = {"knobs": "params"}


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One candidate of the search, pruned, recovered, maybe quantized, and measured.

    Attributes:
        owner: ``host:pid`` of the process that ran the trial (records read from the study).
        knobs: the Optuna parameters of the trial (JSON key ``params``): the structured cut
            (``macs_keep``, ``params_keep`` or ``latency_keep``) and, for size, ``sparsity``.
        structured: the structured cut the knobs gave.
        sparsity: unstructured sparsity added on top.
        float_val_accuracy: validation score before quantization.
        params_count: parameters of the pruned model (JSON key ``params_count``).
        nonzero_params: of those, the nonzero ones.
        macs: MACs at batch 1.
        precision: the deployment's label (``fp32``, ``int8-static (onnxruntime)``, ...).
        onnx: the deployed ONNX graph, when a runtime runs it.
        runtime: that runtime.
        deployments: every deployment timed for the latency goal.
        artifact: the saved model.
        bytes: the artifact's size.
        val_accuracy: validation score of the deployed model.
        drop: how much worse than the original's, in the budget's units.
        latency_ms_b1_raw: batch-1 latency as timed.
        latency_ms_b1: batch-1 latency scaled to the baseline's conditions.
        latency_ms_b64_raw: batch-64 latency as timed.
        latency_ms_b64: batch-64 latency scaled (or re-timed side by side by verify).
        number: the trial's number; ``"7+"`` for trial 7 polished, ``"backoff"``.
        same_plan_as: the trial whose structure, and so whose result, this one reused.
        study: the study a polished record's trial belongs to.
        polished_from: the trial a polished record recovered again.
        recover_epochs: the polished record's recovery epochs.
        latency_ms_b64_trial: the search's batch-64 latency, when verify re-timed it.
    """

    owner: str | None = None
    knobs: dict[str, float]
    structured: Structure
    sparsity: float
    float_val_accuracy: float
    params_count: int
    nonzero_params: int
    macs: int
    precision: str
    onnx: str | None = None
    runtime: str | None = None
    deployments: list[Deployment] | None = None
    artifact: str
    bytes: int
    val_accuracy: float
    drop: float
    latency_ms_b1_raw: float
    latency_ms_b1: float
    latency_ms_b64_raw: float
    latency_ms_b64: float
    number: int | str | None = None
    same_plan_as: int | None = None
    study: str | None = None
    polished_from: int | None = None
    recover_epochs: int | None = None
    latency_ms_b64_trial: float | None = None

    @property
    def pruned(self) -> bool:
        """Whether the plan removed anything (channels, blocks or weights)."""
        return bool(self.structured.ratios) or self.sparsity > 0

    def goal_value(self, goal: str) -> float:
        """The number the search minimises for ``goal``."""
        return float({"latency": self.latency_ms_b64, "size": self.bytes, "macs": self.macs}[goal])

    def profile(self) -> dict[str, Any]:
        """The keys of ``slimkit profile`` the record measured (validation only)."""
        return {
            "val_accuracy": self.val_accuracy,
            "params": self.params_count,
            "nonzero_params": self.nonzero_params,
            "macs": self.macs,
            "bytes": self.bytes,
            "latency_ms_b1": self.latency_ms_b1,
            "latency_ms_b64": self.latency_ms_b64,
        }

    def to_dict(self) -> dict[str, Any]:
        """The record as the run directory's JSON holds it."""
        data = to_json(self, _KEYS)
        data["structured"] = self.structured.to_dict()
        if self.deployments is not None:
            data["deployments"] = [d.to_dict() for d in self.deployments]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRecord:
        """Read a record of this layout; raises ``ValueError`` naming what does not fit."""
        record = from_json(cls, data, _KEYS)
        structured: Any = record.structured
        deployments: Any = record.deployments
        return replace(
            record,
            structured=Structure.from_dict(structured),
            deployments=None
            if deployments is None
            else [Deployment.from_dict(d) for d in deployments],
        )

    @classmethod
    def parse_list(cls, rows: Iterable[Any], source: str | Path) -> list[TrialRecord]:
        """Records from their JSON form; one that does not fit this layout is an
        :class:`~slimkit.errors.ArtifactError` naming ``source``."""
        try:
            return [cls.from_dict(row) for row in rows]
        except (ValueError, TypeError) as err:
            raise older_layout(source, f"a trial record: {err}") from None

    @classmethod
    def read_list(cls, path: str | Path) -> list[TrialRecord]:
        """The records of a JSON list file (``trials.json``, ``polished.json``)."""
        rows = json.loads(Path(path).read_text())
        if not isinstance(rows, list):
            raise older_layout(path, "not a list of trial records")
        return cls.parse_list(rows, path)
