"""Sentence encoders on OpenVINO: the exported float graph compiled for the CPU, and int8 by
NNCF's post-training quantizer.

OpenVINO reads the ONNX graph that :func:`~slimkit.text.export_onnx` writes (dynamic batch and
sequence length) as it is. Its int8 comes from NNCF (``nncf.quantize`` with the transformer
preset: activations quantized statically from calibration sentences, SmoothQuant on the
matrix products), the quantizer a user of OpenVINO would run; ONNX Runtime's dynamic int8 graph
(``MatMulInteger``) is not what OpenVINO's int8 kernels are built for. Nothing here is written
by hand but the calibration batches and the runner.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingDependencyError
from ..models import SentenceEncoder
from ..runtime._openvino import _config, _openvino
from ._runtime import INPUTS, OUTPUT, GraphEncoder

#: Calibration batches of NNCF's int8 and their size.
CALIB_BATCHES, CALIB_BATCH = 16, 8


def openvino_available() -> bool:
    """Whether OpenVINO (the float deployment) is installed."""
    return importlib.util.find_spec("openvino") is not None


def nncf_available() -> bool:
    """Whether NNCF (OpenVINO's int8) is installed besides OpenVINO."""
    return openvino_available() and importlib.util.find_spec("nncf") is not None


class OvEncoder(GraphEncoder):
    """An exported encoder compiled by OpenVINO for the CPU (one stream, latency mode), with
    :class:`GraphEncoder`'s interface. ``path`` is the float ``.onnx`` of
    :func:`~slimkit.text.export_onnx` or the ``.xml`` of :func:`quantize_openvino`.

    Example:
        >>> ov_encoder = OvEncoder("minilm.onnx", encoder.tokenizer, max_length=256)
        >>> ov_encoder.encode(["a sentence"])
    """

    def _load(self, threads: int) -> None:
        core = _openvino().Core()
        compiled = core.compile_model(core.read_model(str(self.path)), "CPU", _config(threads))
        self.request = compiled.create_infer_request()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        out = self.request.infer(feed)
        return torch.from_numpy(np.array(out[OUTPUT]))  # a copy: the request reuses its buffer


def calibration_batches(
    encoder: SentenceEncoder, texts: Sequence[str], length: int
) -> list[dict[str, np.ndarray]]:
    """Up to :data:`CALIB_BATCHES` batches of :data:`CALIB_BATCH` sentences, each padded to
    ``length`` tokens as deployment runs them (the pad positions calibrate too)."""
    if not texts:
        raise ValueError("NNCF's int8 needs calibration sentences; pass training text")
    batches = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cutting long sentences is intended here
        for start in range(0, min(len(texts), CALIB_BATCHES * CALIB_BATCH), CALIB_BATCH):
            chunk = list(texts[start : start + CALIB_BATCH])
            tokens = encoder.tokenize(chunk, max_length=length, pad_to_max=True)
            batches.append({name: tokens[name].numpy() for name in INPUTS})
    return batches


def quantize_openvino(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    calibration: Sequence[dict[str, np.ndarray]],
) -> Path:
    """NNCF int8 (transformer preset) of a float encoder graph, saved as OpenVINO's IR.

    Args:
        source: the float ``.onnx``.
        target: the ``.xml`` to write; its weights go beside it (``.bin``). Both files
            appear together, whole: they are written in a temporary folder and moved in.
        calibration: input batches (see :func:`calibration_batches`).

    Raises:
        MissingDependencyError: without OpenVINO or NNCF (``pip install nncf``).
    """
    ov = _openvino()
    if importlib.util.find_spec("nncf") is None:
        raise MissingDependencyError("OpenVINO's int8 needs NNCF: pip install nncf")
    import nncf

    target = Path(target)
    model = ov.Core().read_model(str(source))
    # NNCF's progress bars and its notice about a small calibration set are not the run's log.
    level = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            quantized = nncf.quantize(
                model,
                nncf.Dataset(list(calibration)),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(calibration),
            )
    finally:
        nncf.set_log_level(level)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".ov-") as tmp:
        staged = Path(tmp) / target.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(staged, target)
    return target


def graph_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files a graph is made of: an ``.onnx``, or an ``.xml`` and its ``.bin``."""
    path = Path(path)
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def graph_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of a graph (its ``.xml`` and ``.bin`` together for OpenVINO's IR)."""
    return sum(f.stat().st_size for f in graph_files(path))


def copy_graph(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy a graph's files to ``target`` (same suffix), each replaced whole."""
    target = Path(target)
    for src, dst in zip(graph_files(source), graph_files(target), strict=True):
        partial = dst.with_name(f".{dst.name}.partial")
        shutil.copyfile(src, partial)
        os.replace(partial, dst)
    return target
