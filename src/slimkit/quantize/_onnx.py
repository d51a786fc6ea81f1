"""ONNX deployment: slimkit's own graph writer, with QDQ nodes from slimkit's scales.

The writer walks the FX graph of a (simulated quantized or float) model and emits one ONNX node
per op. Every :class:`ActQuant` becomes ``QuantizeLinear → DequantizeLinear`` with exactly its
scale and zero point, every int8 weight an int8 initializer behind ``DequantizeLinear``, and
every bias an int32 initializer on the grid the simulated model already uses, so ONNX Runtime's
QDQ fusions turn the graph into QLinearConv / QLinearMatMul / QGemm / QLinearAdd kernels that
compute what the simulated model computes (residual adds and their ReLU included). onnx and onnxruntime are optional (``pip install 'slimkit[onnx]'``).
"""

from __future__ import annotations

import operator
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .._io import atomic_path
from ..errors import UnsupportedOpError
from ._export import require
from ._graph import input_act_quant, target_name, trace
from ._modules import ActQuant, QuantWeight
from ._qmath import ACT_QMIN

OPSET = 17
INPUT, OUTPUT = "input", "logits"
INT8_KERNELS = {
    "QLinearConv",
    "QLinearMatMul",
    "QGemm",
    "QLinearAdd",
    "QLinearGlobalAveragePool",
    "ConvInteger",
    "MatMulInteger",
}
#: Float compute ops that should not survive ONNX Runtime's optimisation of an int8 graph.
FLOAT_COMPUTE = {"Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "Add", "GlobalAveragePool"}


def _pair(value: Any) -> list[int]:
    return list(value) if isinstance(value, tuple | list) else [int(value), int(value)]


class _Writer:
    """Accumulates ONNX nodes and initializers while walking one FX graph."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.helper = require("onnx").helper
        self.numpy_helper = require("onnx").numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.values: dict[fx.Node, str] = {}
        self.quantized: dict[fx.Node, tuple[str, str, str]] = {}
        self.count = 0

    def value(self, node: Any, channels: int = 0) -> str:
        """The ONNX name of ``node``'s output; a quantized one gets a DequantizeLinear per reader.

        ONNX Runtime fuses a DequantizeLinear into a reader's int8 kernel only when it has no
        other reader (a residual Add shares its input with a Conv). ``channels`` > 0 pads a
        quantized NCHW value with zero-point channels up to that many, before dequantizing.
        """
        if node in self.quantized:
            q, scale, zero = self.quantized[node]
            if channels:
                extra = channels - int(node.meta["tensor_meta"].shape[1])
                pads = self.const(node.name + "_pads", np.array([0, 0, 0, 0, 0, extra, 0, 0]))
                q = self.op("Pad", [q, pads, zero], node.name + "_pad", mode="constant")
            return self.op("DequantizeLinear", [q, scale, zero], node.name + "_dq")
        return self.values[node]

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, array: np.ndarray) -> str:
        """An initializer holding ``array``, with its exact shape.

        Shape matters: ONNX Runtime fuses ``DQ, DQ → Add → Q`` into QLinearAdd only when the
        activation scales and zero points are scalars (rank 0), not 1-element vectors (and
        ``np.ascontiguousarray`` turns a rank-0 array into a rank-1 one).
        """
        name = self.name(hint)
        data = np.ascontiguousarray(array).reshape(np.shape(array))
        self.inits.append(self.numpy_helper.from_array(data, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def dequant(self, q: np.ndarray, scale: np.ndarray, hint: str, axis: int = 0) -> str:
        zero = np.zeros(scale.shape, dtype=q.dtype)
        inputs = [self.const(hint, q), self.const(hint + "_scale", scale.astype(np.float32))]
        inputs.append(self.const(hint + "_zp", zero))
        return self.op("DequantizeLinear", inputs, hint + "_dq", axis=axis)


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _weight_inputs(
    w: _Writer, layer: nn.Module, source: ActQuant | None, hint: str, channels: int = 0
) -> list[str]:
    """Weight (and bias) inputs of a Conv/Gemm: int8 behind DequantizeLinear when quantized.

    ``channels`` > 0 pads a quantized conv's weight with zero input channels up to that many.
    """
    if not isinstance(layer, QuantWeight):
        weight, bias = cast(torch.Tensor, layer.weight), cast(torch.Tensor | None, layer.bias)
        inputs = [w.const(hint + "_w", weight.detach().float().numpy())]
        if bias is not None:
            inputs.append(w.const(hint + "_b", bias.detach().float().numpy()))
        return inputs
    if layer.trainable:
        raise UnsupportedOpError(f"{hint}: freeze the QAT model (quantize() does) before export")
    scale = layer.weight_scale.double().numpy()
    q_weight: np.ndarray = layer.weight.detach().numpy()
    if channels:
        shape = (q_weight.shape[0], channels, *q_weight.shape[2:])
        padded = np.zeros(shape, dtype=q_weight.dtype)
        padded[:, : q_weight.shape[1]] = q_weight
        q_weight = padded
    inputs = [w.dequant(q_weight, scale, hint + "_w")]
    if layer.bias is None:
        return inputs
    bias_f = layer.bias.detach().double().numpy()
    if source is None:
        inputs.append(w.const(hint + "_b", bias_f.astype(np.float32)))
    else:
        step = float(source.scale) * scale
        bias_q = np.clip(np.round(bias_f / step), -(2**31), 2**31 - 1).astype(np.int32)
        inputs.append(w.dequant(bias_q, step, hint + "_b"))
    return inputs


def _emit_module(w: _Writer, node: fx.Node, module: nn.Module, x: str) -> str:
    hint = str(node.target).replace(".", "_")
    if isinstance(module, ActQuant):
        scale = w.const(hint + "_s", np.array(float(module.scale), dtype=np.float32))
        zero = w.const(hint + "_zp", np.array(int(module.zero_point), dtype=np.uint8))
        w.quantized[node] = (w.op("QuantizeLinear", [x, scale, zero], hint + "_q"), scale, zero)
        return ""
    kind = module.kind if isinstance(module, QuantWeight) else type(module).__name__
    if kind in ("linear", "Linear"):
        return _emit_linear(w, node, module, x, hint)
    if kind in ("conv2d", "Conv2d", "conv1d", "Conv1d"):
        return _emit_conv(w, node, module, x, hint)
    if isinstance(module, nn.ReLU):
        return x if _relu_absorbed(w, node) else w.op("Relu", [x], hint)
    if isinstance(module, nn.Identity | nn.Dropout):
        return x
    if isinstance(module, nn.MaxPool2d):
        return _pool(w, "MaxPool", x, hint, module.kernel_size, module.stride, module.padding)
    if isinstance(module, nn.AvgPool2d):
        return _pool(w, "AveragePool", x, hint, module.kernel_size, module.stride, module.padding)
    if isinstance(module, nn.AdaptiveAvgPool2d) and _pair(module.output_size) == [1, 1]:
        return w.op("GlobalAveragePool", [x], hint)
    if isinstance(module, nn.Flatten) and module.end_dim == -1:
        return w.op("Flatten", [x], hint, axis=module.start_dim)
    if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
        return _emit_bn(w, module, x, hint)
    translated = _emit_float_op(w, node, module, x)
    if translated is not None:
        return translated
    raise _unsupported(node, type(module).__name__)


#: ONNX Runtime's x86 QLinearConv has a fast kernel for symmetric int8 weights (MlasConvSym)
#: that needs input channels in multiples of 4 and 16+ output channels in multiples of 8. A
#: first conv over 1-3 channels (grayscale, RGB) misses it and falls back to a generic GEMM
#: with a 9-deep inner dimension: seed-cnn's int8 stem took 3.17 ms at batch 64 on one thread,
#: 1.73 ms with its input padded to 4 zero-point channels (same outputs, bit for bit;
#: ``benchmarks/ort_profile.py``).
SYM_CONV_CHANNELS = 4


def padded_channels(w: _Writer, node: fx.Node, layer: nn.Module) -> int:
    """How many input channels ``layer`` reads in the ONNX graph if padded there (0: as is)."""
    if not isinstance(layer, QuantWeight) or layer.kind != "conv2d" or layer.trainable:
        return 0
    if not node.args or node.args[0] not in w.quantized or int(layer.op_kwargs["groups"]) != 1:
        return 0
    out_channels, in_channels = layer.weight.shape[:2]
    if in_channels >= SYM_CONV_CHANNELS or out_channels < 16 or out_channels % 8:
        return 0
    return SYM_CONV_CHANNELS


def _emit_conv(w: _Writer, node: fx.Node, layer: nn.Module, x: str, hint: str) -> str:
    source = input_act_quant(w.gm, node)
    channels = padded_channels(w, node, layer)
    kw = layer.op_kwargs if isinstance(layer, QuantWeight) else _conv_kwargs(layer)
    weight = cast(torch.Tensor, layer.weight)
    dims = weight.dim() - 2
    pads = list(kw["padding"]) if isinstance(kw["padding"], tuple) else None
    if pads is None:
        raise _unsupported(node, f"conv padding={kw['padding']!r}")
    return w.op(
        "Conv",
        [x, *_weight_inputs(w, layer, source, hint, channels)],
        hint,
        kernel_shape=list(weight.shape[2:]),
        strides=list(kw["stride"])[:dims],
        pads=pads + pads,
        dilations=list(kw["dilation"])[:dims],
        group=int(kw["groups"]),
        doc_string=str(node.target),  # the module, for per-layer profiles (_ort_profile)
    )


def _conv_kwargs(conv: nn.Module) -> dict[str, Any]:
    return {k: getattr(conv, k) for k in ("stride", "padding", "dilation", "groups")}


def _emit_linear(w: _Writer, node: fx.Node, layer: nn.Module, x: str, hint: str) -> str:
    source = input_act_quant(w.gm, node)
    inputs = _weight_inputs(w, layer, source, hint)
    rank = len(node.args[0].meta["tensor_meta"].shape)  # type: ignore[union-attr]
    if rank != 2:
        raise _unsupported(node, f"Linear on a rank-{rank} input")
    return w.op("Gemm", [x, *inputs], hint, transB=1, doc_string=str(node.target))


def _emit_bn(w: _Writer, bn: nn.BatchNorm2d, x: str, hint: str) -> str:
    ones = np.ones(bn.num_features, dtype=np.float32)
    weight = bn.weight.detach().numpy() if bn.weight is not None else ones
    bias = bn.bias.detach().numpy() if bn.bias is not None else ones * 0
    assert bn.running_mean is not None and bn.running_var is not None
    parts = [weight, bias, bn.running_mean.numpy(), bn.running_var.numpy()]
    inputs = [w.const(hint, p.astype(np.float32)) for p in parts]
    return w.op("BatchNormalization", [x, *inputs], hint, epsilon=float(bn.eps))


def _pool(
    w: _Writer,
    op: str,
    x: str,
    hint: str,
    kernel: Any,
    stride: Any,
    padding: Any,
    ceil: bool = False,
) -> str:
    kernel = _pair(kernel)
    stride = _pair(stride) if stride not in (None, ()) else kernel
    pads = _pair(padding)
    attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": stride, "pads": pads + pads}
    if ceil:
        attrs["ceil_mode"] = 1
    return w.op(op, [x], hint, **attrs)


def _unsupported(node: fx.Node, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(
        f"ONNX export failed at node {node.name!r}: op {what} has no ONNX translation in slimkit; "
        "use --backend torch, or rewrite the op with Conv/Linear/ReLU/pooling/flatten/add"
    )


def _relu_absorbed(w: _Writer, node: fx.Node) -> bool:
    """A ReLU whose output is quantized with zero point 0 is that quantization's clamp.

    Left out of the graph, the producer (Conv, Add, ...) feeds ``QuantizeLinear`` directly and
    ONNX Runtime fuses the whole unit into one int8 kernel; the numbers are unchanged.
    """
    if len(node.users) != 1:
        return False
    (user,) = node.users
    if user.op != "call_module":
        return False
    module = w.gm.get_submodule(str(user.target))
    return isinstance(module, ActQuant) and int(module.zero_point) == ACT_QMIN


#: Float ops without an int8 kernel in slimkit's rules that still translate (they run in float
#: between DequantizeLinear and QuantizeLinear), by function, method name and module type.
_UNARY: dict[Any, str] = {
    torch.sigmoid: "Sigmoid",
    F.sigmoid: "Sigmoid",
    "sigmoid": "Sigmoid",
    torch.tanh: "Tanh",
    F.tanh: "Tanh",
    "tanh": "Tanh",
    F.hardswish: "HardSwish",
}
_UNARY_MODULES: dict[type, str] = {
    nn.Sigmoid: "Sigmoid",
    nn.Tanh: "Tanh",
    nn.Hardswish: "HardSwish",
}
_SILU: tuple[Any, ...] = (F.silu, nn.SiLU)


def _emit_float_op(w: _Writer, node: fx.Node, op: Any, x: str) -> str | None:
    """The translation of a float elementwise op (``op``: function, method name or module)."""
    key = type(op) if isinstance(op, nn.Module) else op
    if key in _UNARY_MODULES or (not isinstance(op, nn.Module) and op in _UNARY):
        return w.op(_UNARY_MODULES.get(key) or _UNARY[op], [x], node.name)
    if key in _SILU:
        return w.op("Mul", [x, w.op("Sigmoid", [x], node.name + "_sigmoid")], node.name)
    if isinstance(op, nn.LeakyReLU):
        return w.op("LeakyRelu", [x], node.name, alpha=float(op.negative_slope))
    return None


def _emit_function(w: _Writer, node: fx.Node, env: Callable[[Any], str]) -> str:
    fn, hint = node.target, node.name
    if fn is torch.cat and isinstance(node.args[0], list | tuple):
        inputs = [env(a) for a in node.args[0]]
        return w.op("Concat", inputs, hint, axis=int(_arg(node, 1, "dim", 0)))
    if not node.args or not isinstance(node.args[0], fx.Node):
        raise _unsupported(node, target_name(node))
    x = env(node.args[0])
    if fn in (operator.add, torch.add) and isinstance(node.args[1], fx.Node):
        return w.op("Add", [x, env(node.args[1])], hint)
    if fn in (operator.mul, torch.mul) and isinstance(node.args[1], fx.Node):
        return w.op("Mul", [x, env(node.args[1])], hint)
    translated = _emit_float_op(w, node, fn, x)
    if translated is not None:
        return translated
    if fn in (torch.relu, F.relu) or (node.op == "call_method" and fn == "relu"):
        return x if _relu_absorbed(w, node) else w.op("Relu", [x], hint)
    if fn in (torch.flatten, "flatten") and _arg(node, 2, "end_dim", -1) == -1:
        return w.op("Flatten", [x], hint, axis=int(_arg(node, 1, "start_dim", 0)))
    if fn is F.adaptive_avg_pool2d and _pair(_arg(node, 1, "output_size")) == [1, 1]:
        return w.op("GlobalAveragePool", [x], hint)
    if fn in (F.max_pool2d, F.avg_pool2d):
        kernel = _arg(node, 1, "kernel_size")
        stride, pad = _arg(node, 2, "stride", None), _arg(node, 3, "padding", 0)
        return _pool(
            w, "MaxPool" if fn is F.max_pool2d else "AveragePool", x, hint, kernel, stride, pad
        )
    raise _unsupported(node, target_name(node))


def to_onnx_model(model: nn.Module, example: torch.Tensor) -> Any:
    """Build the ``onnx.ModelProto`` of ``model`` (float, or int8 with QDQ nodes).

    Raises:
        UnsupportedOpError: naming the first op slimkit cannot translate.
    """
    onnx = require("onnx")
    gm = model if isinstance(model, fx.GraphModule) else trace(model)
    ShapeProp(gm).propagate(example.float())
    w = _Writer(gm)
    env = w.value
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            w.values[node] = INPUT
        elif node.op == "call_module":
            module = modules[str(node.target)]
            x = w.value(node.args[0], padded_channels(w, node, module))
            w.values[node] = _emit_module(w, node, module, x)
        elif node.op in ("call_function", "call_method"):
            w.values[node] = _emit_function(w, node, env)
        elif node.op == "output":
            w.nodes.append(w.helper.make_node("Identity", [env(node.args[0])], [OUTPUT]))
        else:
            raise _unsupported(node, f"{node.op} {node.target}")
    return _assemble(onnx, w, example, gm)


def _assemble(onnx: Any, w: _Writer, example: torch.Tensor, gm: fx.GraphModule) -> Any:
    helper = onnx.helper
    out_shape = (
        next(n for n in gm.graph.nodes if n.op == "output").args[0].meta["tensor_meta"].shape
    )
    float_type = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        w.nodes,
        "slimkit",
        [helper.make_tensor_value_info(INPUT, float_type, ["batch", *example.shape[1:]])],
        [helper.make_tensor_value_info(OUTPUT, float_type, ["batch", *out_shape[1:]])],
        initializer=w.inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = 8
    proto.producer_name = "slimkit"
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: nn.Module, path: str | os.PathLike[str], example: torch.Tensor) -> Path:
    """Write ``model`` as an ONNX file (atomically) with a dynamic batch dimension.

    Example:
        >>> export_onnx(quantized, "q.onnx", splits.example_input(1))
    """
    from ._ort_int8 import OrtInt8Model

    proto = model.proto if isinstance(model, OrtInt8Model) else to_onnx_model(model, example)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return Path(path)


def session(
    path: str | os.PathLike[str],
    threads: int = 1,
    optimized: str | None = None,
    profile_prefix: str | None = None,
) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations on (``profile_prefix``: with
    ONNX Runtime's profiler on, writing there).

    Its worker threads sleep between runs instead of spinning (ONNX Runtime's default): with
    several sessions and PyTorch in one process, a spinning pool takes the cores the next
    model needs. Timed interleaved on 2 cores (seed-cnn, batch 64, 4 identical fp32
    sessions), spinning made the sessions 1.9 to 9.9 ms instead of 1.2 ms, and eager PyTorch
    66 ms instead of 5.6 ms.

    ONNX Runtime's QDQ propagation is off: it moves a QuantizeLinear up through max-pooling, so
    a network whose first conv stays float (mixed precision) ran that pool on uint8 NCHW data.
    seed-cnn at batch 64 on one thread, its first conv float: 4.73 ms with propagation, 1.84
    ms without (all-int8 2.95 ms, fp32 2.35 ms, timed interleaved); all-int8 graphs of seed-cnn
    and resnet20 ran the same either way (2.94 vs 2.95 ms, 30.4 vs 30.8 ms).
    """
    return _session(str(path), threads, optimized, profile_prefix)


def _session(
    model: str | bytes,
    threads: int,
    optimized: str | None = None,
    profile_prefix: str | None = None,
) -> Any:
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized is not None:
        options.optimized_model_filepath = optimized
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(
        model,
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["QDQPropagationTransformer"],
    )


def session_from_bytes(model: bytes, threads: int = 1) -> Any:
    """:func:`session`'s settings for an in-memory graph."""
    return _session(model, threads)


class OrtModule(nn.Module):
    """Runs an ONNX file with ONNX Runtime behind the ``nn.Module`` call interface.

    Accuracy and latency helpers written for PyTorch models work on it unchanged.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        super().__init__()
        self.path = str(path)
        self.session = session(path, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {INPUT: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out)


def optimized_op_types(path: str | os.PathLike[str]) -> Counter[str]:
    """Op types of the graph ONNX Runtime actually runs, after its optimisations (QDQ fusions).

    In a well-formed int8 graph only :data:`INT8_KERNELS`, layout and pass-through ops remain:
    any of :data:`FLOAT_COMPUTE` means a round trip through float.
    """
    onnx = require("onnx")
    target = Path(path).with_suffix(".ort-optimized.onnx")
    try:
        session(path, optimized=str(target))
        return Counter(node.op_type for node in onnx.load(str(target)).graph.node)
    finally:
        target.unlink(missing_ok=True)
