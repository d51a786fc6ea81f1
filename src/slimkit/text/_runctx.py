"""The run directory of a sentence-encoder compress run, and what its stages share.

``RUN_DIR/state.json`` is the image pipeline's :class:`~slimkit.search.RunDir`: the config,
each finished stage (``baseline``, ``search``, ``export``) with the inputs it ran with, and,
while the search runs, every finished candidate (``candidates``), so a killed run resumes
without redoing them. The run is tied to its input: the encoder's tensors and the sentences
of every split, by SHA-256.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_path
from ..data import TextSplits
from ..errors import MissingDependencyError, SlimkitError
from ..models import SentenceEncoder
from ..search import RunDir
from ._bench import SEARCH_BATCH, Runner, padded_batch, time_batch
from ._metrics import agreement
from ._openvino import OvEncoder, graph_bytes, nncf_available, openvino_available
from ._plan import TOP_K, EncoderCompressConfig
from ._records import ONNXRUNTIME, OPENVINO, FormResult, runtime_of
from ._runtime import GraphEncoder, OrtEncoder

#: A deployed encoder (see :class:`~slimkit.text._runtime.GraphEncoder`).
Encoder = GraphEncoder

TASK = "sentence-embedding"
#: Keys of the compress config each stage's output depends on (besides the input and the
#: measurement settings, which every stage reads).
_SEARCH_KEYS = (
    "min_cosine",
    "min_overlap",
    "goal",
    "candidates",
    "distill",
    "distill_steps",
    "max_seconds",
)
#: Keys a finished candidate depends on, besides its own prune config.
_CANDIDATE_KEYS = ("distill", "distill_steps", "max_seconds")


def tensors_sha256(encoder: SentenceEncoder) -> str:
    """SHA-256 over the encoder's tensors: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{list(tensor.shape)}|".encode())
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sentences_sha256(splits: TextSplits) -> str:
    """SHA-256 over the sentences of every split, split by split."""
    digest = hashlib.sha256()
    for name in ("train", "val", "eval"):
        digest.update(f"\x00{name}\x00".encode())
        for text in getattr(splits, name):
            digest.update(text.encode() + b"\n")
    return digest.hexdigest()


def deploy_runtimes(cfg: EncoderCompressConfig) -> tuple[str, ...]:
    """The runtimes whose forms every candidate is measured in: ``cfg.backend``, or with
    ``auto`` ONNX Runtime and (when installed) OpenVINO."""
    if cfg.backend != "auto":
        return (cfg.backend,)
    return (ONNXRUNTIME, OPENVINO) if openvino_available() else (ONNXRUNTIME,)


def check_backend(cfg: EncoderCompressConfig) -> None:
    """Refuse a backend that is not installed, before any work.

    Raises:
        MissingDependencyError: naming the package to install.
    """
    if cfg.backend != OPENVINO:
        return
    if not openvino_available():
        raise MissingDependencyError(
            "--backend openvino needs OpenVINO: pip install 'slimkit[openvino]'"
        )
    if cfg.quantize and not nncf_available():
        raise MissingDependencyError(
            "--backend openvino with int8 needs NNCF: pip install nncf (or pass --no-quantize)"
        )


def run_config(
    cfg: EncoderCompressConfig, encoder: SentenceEncoder, splits: TextSplits
) -> dict[str, Any]:
    """What ``state.json`` records as the run's configuration."""
    return {
        "task": TASK,
        "compress": cfg.to_dict(),
        "input": {
            "model_sha256": tensors_sha256(encoder),
            "data_sha256": sentences_sha256(splits),
            "model": encoder.source,
            "data": splits.describe(),
        },
    }


def _base_inputs(config: dict[str, Any]) -> dict[str, Any]:
    given, compress = config.get("input", {}), config.get("compress", {})
    return {
        "model": given.get("model_sha256"),
        "data": given.get("data_sha256"),
        "measure": compress.get("measure"),
        "quantize": compress.get("quantize"),
        "backend": compress.get("backend"),
    }


def stage_inputs(config: dict[str, Any], stage: str) -> Any:
    """What ``stage``'s output depends on (see :class:`~slimkit.search.RunDir`)."""
    if stage == "baseline":
        return _base_inputs(config)
    if stage in ("search", "export"):
        compress = config.get("compress", {})
        return {**_base_inputs(config), **{k: compress.get(k) for k in _SEARCH_KEYS}}
    return None


def candidate_inputs(config: dict[str, Any], prune: dict[str, Any]) -> dict[str, Any]:
    """What a finished candidate's record depends on: a resumed run reuses it when equal."""
    compress = config.get("compress", {})
    return {**_base_inputs(config), "prune": prune, **{k: compress.get(k) for k in _CANDIDATE_KEYS}}


def open_run(path: str | Path, config: dict[str, Any], resume: bool) -> RunDir:
    """Start a run in ``path``, or with ``resume`` continue the sentence-encoder run there.

    Raises:
        SlimkitError: for an existing run without ``resume``, an image run, or a run started
            on another encoder or other sentences.
    """
    saved = check_run_dir(path, resume)
    if saved is not None:
        _check_same_input(Path(path), saved.get("input", {}), config["input"])
    return RunDir.create(Path(path), config, resume, inputs=stage_inputs)


def check_run_dir(path: str | Path, resume: bool) -> dict[str, Any] | None:
    """The configuration of the sentence-encoder run in ``path`` (None: no run there yet),
    checked before any work: a run is continued only with ``resume``.

    Raises:
        SlimkitError: for an existing run without ``resume``, or an image run.
    """
    path = Path(path)
    if not (path / "state.json").exists():
        return None
    saved: dict[str, Any] = RunDir.open(path).state.get("config") or {}
    if not resume:
        raise SlimkitError(
            f"{path} already holds a compress run; pass --resume to continue it or choose "
            "another --out directory"
        )
    if saved.get("task") != TASK:
        raise SlimkitError(
            f"{path} holds an image compress run, not a --task {TASK} one; pass another --out "
            "directory"
        )
    return saved


def _check_same_input(path: Path, saved: dict[str, Any], given: dict[str, Any]) -> None:
    for key, what in (("model_sha256", "encoder"), ("data_sha256", "sentences")):
        if saved.get(key) != given[key]:
            raise SlimkitError(
                f"{path} was started on another {what} (sha256 {str(saved.get(key))[:12]}, "
                f"now {given[key][:12]}); its baseline holds for that input only: pass the "
                "same input to continue it, or another --out for a new run"
            )


def save_embeddings(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Embeddings as safetensors, written atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def load_embeddings(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


@dataclass
class Context:
    """What the stages of one run share."""

    teacher: SentenceEncoder
    splits: TextSplits
    cfg: EncoderCompressConfig
    run: RunDir
    log: Callable[[str], None]
    threads: int
    length: int
    progress: bool = False
    #: Where pruned candidates are distilled (measurement and export stay on the CPU).
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: The original's ``val`` and ``test`` embeddings, once computed or read back.
    reference: dict[str, torch.Tensor] | None = None
    _sessions: dict[tuple[str, str], Encoder] = field(default_factory=dict)
    _teacher_on_device: SentenceEncoder | None = None

    @property
    def path(self) -> Path:
        return self.run.path

    def teacher_embeddings(self) -> dict[str, torch.Tensor]:
        """The original's validation (``val``) and test (``test``) embeddings."""
        if self.reference is None:
            file = self.path / self.run.output("baseline")["files"]["teacher_embeddings"]
            self.reference = load_embeddings(file)
        return self.reference

    def distill_teacher(self) -> SentenceEncoder:
        """The original on :attr:`device` (the original itself on the CPU, else a copy)."""
        if self.device.type == "cpu":
            return self.teacher
        if self._teacher_on_device is None:
            self._teacher_on_device = copy.deepcopy(self.teacher).to(self.device).eval()
        return self._teacher_on_device

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The runtimes the result may deploy on (see :func:`deploy_runtimes`)."""
        return deploy_runtimes(self.cfg)

    def session(self, graph: str | Path, runtime: str = ONNXRUNTIME) -> Encoder:
        """An encoder of ``graph`` (a path inside the run directory) on ``runtime``, cached."""
        key = (str(graph), runtime)
        if key not in self._sessions:
            kind = OvEncoder if runtime == OPENVINO else OrtEncoder
            self._sessions[key] = kind(
                self.path / graph,
                self.teacher.tokenizer,
                max_length=self.teacher.max_length,
                threads=self.threads,
            )
        return self._sessions[key]

    def agreement(self, runner: Encoder | SentenceEncoder, split: str) -> dict[str, float]:
        """Mean and 5th-percentile cosine and top-10 overlap against the original on
        ``split`` (``val`` or ``test``)."""
        texts = self.splits.val if split == "val" else self.splits.eval
        embeddings = runner.encode(texts, max_length=self.length)
        return agreement(self.teacher_embeddings()[split], embeddings, k=TOP_K)

    def measure_forms(self, graphs: Mapping[str, str], yardstick: str) -> tuple[FormResult, ...]:
        """Each graph (form name → path in the run directory) measured on the validation
        sentences, and timed at batch 32 interleaved with ``yardstick`` (the original's fp32
        graph)."""

        def is_yardstick(name: str, graph: str) -> bool:
            return graph == yardstick and runtime_of(name) == ONNXRUNTIME

        runners: dict[str, Runner] = {"yardstick": self.session(yardstick)}
        runners.update(
            {
                name: self.session(g, runtime_of(name))
                for name, g in graphs.items()
                if not is_yardstick(name, g)
            }
        )
        batch = padded_batch(self.teacher, self.splits.val, SEARCH_BATCH, self.length)
        rounds = self.cfg.measure.rounds
        times = time_batch(runners, batch, rounds=rounds, threads=self.threads)
        forms = []
        for name, graph in graphs.items():
            quality = self.agreement(self.session(graph, runtime_of(name)), "val")
            ms = times["yardstick" if is_yardstick(name, graph) else name]
            forms.append(
                FormResult(
                    form=name,
                    mean_cosine=quality["mean_cosine"],
                    p5_cosine=quality["p5_cosine"],
                    top10_overlap=quality[f"top{TOP_K}_overlap"],
                    ms_b32=ms,
                    relative_b32=ms / times["yardstick"],
                    bytes=graph_bytes(self.path / graph),
                    graph=str(graph),
                )
            )
        return tuple(forms)
