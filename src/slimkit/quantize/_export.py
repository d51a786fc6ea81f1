"""Float ONNX graphs from PyTorch's own exporter (``torch.onnx.export``, torch.export-based).

slimkit writes no ONNX by hand: the exporter PyTorch maintains translates every op it knows
(hard-swish, stochastic depth, permutes, attention, ...), and its optimiser folds BatchNorm into
the preceding convolution. What slimkit adds is the map back to modules: each Conv, Gemm and
MatMul node records in its ``doc_string`` the module it computes, so ONNX Runtime's per-kernel
profile, the int8 exclusion list and the sensitivity ranking speak in module paths. A weight's
initializer keeps its parameter's name (``features.0.0.weight``); a MatMul whose weight was
transposed or reshaped is placed by the exporter's ``name_scopes`` metadata instead.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_path
from ..errors import MissingDependencyError, UnsupportedOpError

INPUT, OUTPUT = "input", "logits"
#: ONNX ops that carry a layer's weights.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_WEIGHTED_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def require(module: str) -> Any:
    """Import an optional dependency of the ONNX path, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"the onnxruntime backend needs {module}: pip install 'slimkit[onnx]', or use "
            "backend='torch'"
        ) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # The exporter prints its progress and warns about every decomposition it applies.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MISSING_OP = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)'")


def _reason(err: BaseException) -> str:
    """The exporter's reason in one line: the op it has no translation for, when it says."""
    text = _ANSI.sub("", str(err))
    missing = _MISSING_OP.search(text)
    if missing:
        return f"no ONNX translation of {missing.group(1)}"
    _, _, summary = text.partition("## Exception summary")
    lines = [line.strip() for line in (summary or text).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return re.sub(r"^<class '[^']+'>: ", "", lines[0])[:300]


def export_proto(model: nn.Module, example: torch.Tensor) -> Any:
    """The float ONNX ``ModelProto`` of ``model`` (eval mode, CPU), batch axis dynamic.

    Raises:
        UnsupportedOpError: if PyTorch's exporter cannot export the model; the message names
            the exporter's reason (usually the op).
    """
    require("onnxscript")
    onnx = require("onnx")
    model = model.cpu().eval()
    batch = torch.export.Dim.DYNAMIC
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                model,
                (example.cpu(),),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
    except Exception as err:  # the exporter raises many types, each naming the op
        raise UnsupportedOpError(
            f"torch.onnx.export cannot export {type(model).__name__}: {_reason(err)}; "
            "deploy with backend='torch' or replace the op"
        ) from None
    assert program is not None
    proto = onnx.load_model_from_string(program.model_proto.SerializeToString())
    _tag_layers(proto, model)
    return proto


def export_float(model: nn.Module, path: str | os.PathLike[str], example: torch.Tensor) -> Path:
    """Export ``model`` to ``path`` (atomically) as a float ONNX graph."""
    proto = export_proto(model, example)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return Path(path)


def _scopes(node: Any) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(prop.value)
                return [str(s) for s in value] if isinstance(value, list) else []
    return []


def _module_of(node: Any, initializers: set[str], weighted: set[str]) -> str | None:
    for name in node.input[1:2]:
        if name in initializers and name.endswith(".weight") and name[:-7] in weighted:
            return str(name)[:-7]
    return next((s for s in reversed(_scopes(node)) if s in weighted), None)


def _tag_layers(proto: Any, model: nn.Module) -> None:
    initializers = {i.name for i in proto.graph.initializer}
    weighted = {n for n, m in model.named_modules() if isinstance(m, _WEIGHTED_MODULES)}
    for node in proto.graph.node:
        if node.op_type in WEIGHTED_OPS:
            module = _module_of(node, initializers, weighted)
            if module is not None:
                node.doc_string = module


def layer_nodes(proto: Any) -> dict[str, str]:
    """ONNX node name → module path of every weighted node the exporter's map placed."""
    return {
        n.name: n.doc_string for n in proto.graph.node if n.op_type in WEIGHTED_OPS and n.doc_string
    }
