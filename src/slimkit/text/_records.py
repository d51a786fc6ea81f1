"""What one candidate of the sentence-encoder search measured, as typed records.

Records travel through ``state.json`` and ``summary.json`` as plain dicts, written and read by
:class:`~slimkit.ConfigBase` (an unknown or missing key is an error, and the layout is
versioned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._config import ConfigBase
from ._prune import EncoderPruneConfig

#: The label of the unpruned encoder among the candidates.
UNPRUNED = "unpruned"
#: The runtimes a sentence encoder deploys on.
ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"
TEXT_RUNTIMES = (ONNXRUNTIME, OPENVINO)


@dataclass(frozen=True, kw_only=True)
class FormResult(ConfigBase):
    """One deployed form of a candidate (a graph and the runtime that runs it), measured on
    the validation sentences against the original's embeddings.

    Attributes:
        form: ``fp32`` or ``int8`` on ONNX Runtime (dynamic int8, per-channel weights), or
            ``fp32-openvino`` / ``int8-openvino`` on OpenVINO (int8: NNCF, static).
        mean_cosine: mean cosine to the original's embedding of the same sentence.
        p5_cosine: its 5th percentile.
        top10_overlap: mean fraction of each sentence's 10 nearest neighbours retrieved too.
        ms_b32: median batch-32 milliseconds, sentences padded to the measured length.
        relative_b32: ``ms_b32`` over the original's fp32 ONNX Runtime time in the same
            interleaved rounds (what the latency goal compares: drift cancels out).
        bytes: size of the graph's files.
        graph: the graph's path inside the run directory ("" once removed).
    """

    form: str
    mean_cosine: float
    p5_cosine: float
    top10_overlap: float
    ms_b32: float
    relative_b32: float
    bytes: int
    graph: str = ""

    @property
    def runtime(self) -> str:
        """``onnxruntime`` or ``openvino``: the engine that runs this form."""
        return runtime_of(self.form)


def runtime_of(form: str) -> str:
    """The runtime of a form name (see :class:`FormResult`)."""
    return OPENVINO if form.endswith(f"-{OPENVINO}") else ONNXRUNTIME


@dataclass(frozen=True, kw_only=True)
class CandidateRecord(ConfigBase):
    """A finished candidate: how it was pruned and distilled, and its measured forms.

    Attributes:
        label: :func:`~slimkit.text._plan.candidate_label`, or ``unpruned``.
        index: its place in the search order (0 for the unpruned encoder, first tried 1).
        prune: the prune config (None for the unpruned encoder).
        predicted: the fraction of the goal's predicted cost (MACs or parameters) it keeps.
        params: parameters after pruning.
        layers: heads, head size and FFN width of every remaining layer.
        distill: steps, seconds, whether the time limit stopped it, the last epoch's loss.
        forms: the measured forms.
        seconds: wall time of the whole candidate.
        directory: its folder inside the run directory, holding ``model/`` (the fp32
            student) and ``val_embeddings.safetensors``; None when its files were removed
            (it missed the budget) or it has none (the unpruned encoder).
    """

    label: str
    index: int
    prune: EncoderPruneConfig | None = None
    predicted: float = 1.0
    params: int
    layers: list[dict[str, int]] = field(default_factory=list)
    distill: dict[str, Any] = field(default_factory=dict)
    forms: tuple[FormResult, ...] = ()
    seconds: float = 0.0
    directory: str | None = None

    def form(self, name: str) -> FormResult:
        """The form called ``name``.

        Raises:
            KeyError: if it was not measured.
        """
        for found in self.forms:
            if found.form == name:
                return found
        raise KeyError(f"candidate {self.label} has no {name} form")
