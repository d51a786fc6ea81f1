"""The deployed form of a quantized artifact: its ONNX file, and measuring it with ONNX Runtime."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .._attrs import ARCH_ATTR, QUANT_ATTR
from ..errors import ArtifactError
from ..export import SpecSection, check_graph, read_spec, register_spec_section
from ._api import ONNX_SCHEMES, quantization_spec, restore_structure
from ._onnx import export_onnx


def example_input(model: nn.Module, batch_size: int = 1) -> torch.Tensor:
    """A zero input of the shape the model was quantized for."""
    section = getattr(model, QUANT_ATTR, {})
    shape = section.get("input_shape")
    if shape is None:
        kwargs = getattr(model, ARCH_ATTR, {}).get("kwargs", {})
        size = kwargs.get("image_size", 28)
        shape = [kwargs.get("in_channels", 1), size, size]
    return torch.zeros(batch_size, *shape)


def onnx_path(artifact: str | os.PathLike[str]) -> Path:
    """Where the deployable graph of ``q.safetensors`` lives: ``q.onnx``."""
    return Path(artifact).with_suffix(".onnx")


def write_deployment(model: nn.Module, artifact: Path) -> Path | None:
    """Write ``artifact``'s ``.onnx`` twin (atomically) if the model is an int8 ONNX Runtime
    model; :func:`slimkit.save` calls it before writing the artifact, which records its hash."""
    section = getattr(model, QUANT_ATTR, {})
    if section.get("backend") != "onnxruntime" or section.get("scheme") not in ONNX_SCHEMES:
        return None
    return export_onnx(model, onnx_path(artifact), example_input(model))


def deployed_graph(artifact: str | os.PathLike[str]) -> Path:
    """The ``.onnx`` graph saved with ``artifact``, checked against the hash it records.

    Raises:
        ArtifactError: if the graph is missing, or stale (not the one saved with ``artifact``).
    """
    path = onnx_path(artifact)
    if not path.is_file():
        raise ArtifactError(
            f"{path} does not exist; write it with `slimkit quantize ... --backend onnxruntime` "
            "(int8-static, qat or int8-weight-only)"
        )
    check_graph(Path(artifact), read_spec(artifact), path)
    return path


register_spec_section(
    SpecSection(
        key="quantization",
        attr=QUANT_ATTR,
        describe=quantization_spec,
        restore=restore_structure,
        deploy=write_deployment,
    )
)
