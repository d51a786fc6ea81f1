"""PyTorch-native int8: slimkit's int8 model as a PT2E q/dq graph, compiled to oneDNN kernels.

The simulated model's activation quantizers become ``quantize_per_tensor → dequantize_per_tensor``
pairs and its int8 weights ``dequantize_per_channel`` of int8 constants: the graph PT2E's
``convert_pt2e`` produces, but with slimkit's own scales and zero points (the ones the ONNX graph
uses), so both backends compute the same numbers (up to one rounding skipped where a conv feeds
a residual add, see :func:`to_qdq_graph`). ``torch.compile`` with Inductor freezing then matches
these patterns with torchao's x86 passes and runs oneDNN ``qconv`` / ``qlinear`` kernels.

torchao is optional (``pip install 'slimkit[torchao]'``); x86 CPUs only.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import operator
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import MissingDependencyError, UnsupportedOpError
from ._graph import act_quants
from ._modules import ActQuant, QuantWeight, set_module
from ._qmath import ACT_QMAX, ACT_QMIN

#: Modules whose import registers the q/dq ops and the x86 Inductor lowering passes.
_TORCHAO_MODULES = (
    "torch.ao.quantization.fx._decomposed",
    "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer",
)
_CONV_FN = {"conv1d": F.conv1d, "conv2d": F.conv2d, "conv3d": F.conv3d}


def require_torchao() -> None:
    """Import torchao's PT2E x86 lowering, or say which extra installs it.

    Raises:
        MissingDependencyError: if torchao is not installed (or too old to have the passes).
    """
    for module in _TORCHAO_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise MissingDependencyError(
                f"int8 on the torch backend runs through torchao's PT2E x86 Inductor lowering, "
                f"and importing {module} failed ({err}): pip install 'slimkit[torchao]', or use "
                "backend='onnxruntime'"
            ) from None


class _QDQ(nn.Module):
    """uint8 quantize-dequantize of one activation with fixed scale and zero point."""

    def __init__(self, scale: float, zero_point: int) -> None:
        super().__init__()
        self.scale, self.zero_point = scale, zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops = torch.ops.quantized_decomposed
        args = (self.scale, self.zero_point, ACT_QMIN, ACT_QMAX, torch.uint8)
        quantized = ops.quantize_per_tensor.default(x, *args)
        return cast(torch.Tensor, ops.dequantize_per_tensor.default(quantized, *args))


class _Int8Layer(nn.Module):
    """A Conv/Linear whose int8 weight is dequantized per channel inside the graph.

    Weights, scales and zero points are buffers so that Inductor's freezing folds them into
    prepacked oneDNN weights.
    """

    weight: torch.Tensor
    weight_scale: torch.Tensor
    weight_zero_point: torch.Tensor

    def __init__(self, layer: QuantWeight) -> None:
        super().__init__()
        if layer.trainable:
            raise UnsupportedOpError("freeze the QAT model (quantize() does) before lowering")
        self.kind, self.op_kwargs = layer.kind, dict(layer.op_kwargs)
        self.register_buffer("weight", layer.weight.detach().clone())
        self.register_buffer("weight_scale", layer.weight_scale.detach().float().clone())
        zeros = torch.zeros(layer.weight.shape[0], dtype=torch.int64)
        self.register_buffer("weight_zero_point", zeros)
        bias = layer.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.ops.quantized_decomposed.dequantize_per_channel.default(
            self.weight, self.weight_scale, self.weight_zero_point, 0, -128, 127, torch.int8
        )
        if self.kind == "linear":
            return F.linear(x, weight, self.bias)
        return _CONV_FN[self.kind](x, weight, self.bias, **self.op_kwargs)


def _is_call(gm: fx.GraphModule, node: Any, kind: type) -> bool:
    return (
        isinstance(node, fx.Node)
        and node.op == "call_module"
        and isinstance(gm.get_submodule(str(node.target)), kind)
    )


def _fuse_residual_adds(gm: fx.GraphModule) -> None:
    """Drop the output rounding of a conv that only feeds a residual add.

    oneDNN adds the residual inside the int8 conv (a ``sum`` post-op), before the one rounding
    of the add's output; this is the pattern PT2E's x86 quantizer annotates and Inductor fuses.
    The result differs from the simulated model by that skipped rounding step only.
    """
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in (operator.add, torch.add):
            continue
        for arg in node.args[:2]:
            if not _is_call(gm, arg, _QDQ):
                continue
            assert isinstance(arg, fx.Node)
            conv = arg.args[0]
            if _is_call(gm, conv, _Int8Layer) and len(arg.users) == 1:
                assert isinstance(conv, fx.Node)
                if len(conv.users) != 1:
                    continue
                arg.replace_all_uses_with(conv)
                gm.graph.erase_node(arg)
                break
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def to_qdq_graph(model: nn.Module, *, fuse_residual: bool = True) -> fx.GraphModule:
    """The int8 model as PT2E's converted q/dq graph, with slimkit's scales (runs eagerly too).

    With ``fuse_residual`` (the default), a conv whose output only feeds a residual add keeps it
    unrounded, so that Inductor can run conv + add (+ ReLU) as one oneDNN kernel; without it,
    the graph computes exactly what the simulated model computes.

    Args:
        model: a frozen int8-static or QAT model returned by :func:`quantize` (or loaded).
        fuse_residual: leave convs feeding residual adds unrounded (faster on oneDNN).

    Raises:
        MissingDependencyError: if torchao is not installed.
        UnsupportedOpError: if ``model`` is not a static int8 model.
    """
    require_torchao()
    if not isinstance(model, fx.GraphModule) or not act_quants(model):
        raise UnsupportedOpError(
            "the torch int8 backend runs int8-static and QAT models returned by quantize() "
            f"(got {type(model).__name__} without activation quantizers)"
        )
    gm = copy.deepcopy(model).cpu().eval()
    for name, module in list(gm.named_modules()):
        if isinstance(module, ActQuant):
            if module.mode != "fake":
                raise UnsupportedOpError(f"{name} is not calibrated (mode {module.mode!r})")
            set_module(gm, name, _QDQ(float(module.scale), int(module.zero_point)))
        elif isinstance(module, QuantWeight):
            set_module(gm, name, _Int8Layer(module))
    if fuse_residual:
        _fuse_residual_adds(gm)
    return gm


@contextlib.contextmanager
def _inference_freezing() -> Iterator[None]:
    """Inductor freezing (constant weights, prepacked) for the calls inside; restored after.

    Passing ``options={"freezing": True}`` to ``torch.compile`` is not enough: the setting must
    be on while Dynamo lifts the parameters, at every (re)compilation.
    """
    import torch._inductor.config as inductor_config

    previous = inductor_config.freezing
    inductor_config.freezing = True
    try:
        with torch.no_grad():
            yield
    finally:
        inductor_config.freezing = previous


class TorchInt8Module(nn.Module):
    """Runs a slimkit int8 model on PyTorch's x86 int8 kernels (oneDNN), via ``torch.compile``.

    Compilation is static-shape (``dynamic=False``; dynamic shapes break the int8 lowering):
    the first call with a new batch size compiles again (seconds to a minute on one core).

    Args:
        model: a frozen int8-static or QAT model returned by :func:`quantize` (or loaded).
        example: an input to compile for now, so that failures surface here; None defers.

    Example:
        >>> runner = TorchInt8Module(quantized, example=splits.example_input(64))
        >>> logits = runner(batch_of_64)

    Raises:
        MissingDependencyError: if torchao is not installed.
        UnsupportedOpError: if the model is not static int8, or compilation fails.
    """

    def __init__(self, model: nn.Module, *, example: torch.Tensor | None = None) -> None:
        super().__init__()
        self.graph = to_qdq_graph(model)
        self.compiled = cast(nn.Module, torch.compile(self.graph, dynamic=False))
        if example is not None:
            try:
                self(example)
            except Exception as err:  # Inductor raises many types (compiler missing, lowering)
                raise UnsupportedOpError(
                    f"torch.compile could not build the int8 model: {type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}; Inductor needs a C++ "
                    "compiler and an x86 CPU; use backend='onnxruntime' otherwise"
                ) from None

    def forward(self, x: torch.Tensor) -> Any:
        with _inference_freezing():
            return self.compiled(x.detach().cpu().float())
