"""Placing activation quantizers on a traced graph, the way int8 runtimes execute it.

Rules (those of ONNX Runtime's QDQ format, so the simulated model and the deployed graph agree):

* an op with an int8 kernel (Conv, Linear, Add, average pooling) reads quantized inputs and writes
  a quantized output; a ReLU that alone reads that output is fused (the range starts at 0);
* an op that keeps values on their grid (max-pool, flatten, ReLU, identity) passes the input's
  scale and zero point on to its output;
* anything else runs in float and is listed in the report: its output is quantized again only
  where an int8 op reads it.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import UnsupportedOpError
from ._modules import WEIGHTED_TYPES, ActQuant, Int4Linear, QuantWeight, set_module
from ._observers import make_observer

_RELU_FNS = {F.relu, torch.relu}
_POOL_FNS = {F.adaptive_avg_pool2d, F.avg_pool2d}
_PASS_FNS = {torch.flatten, F.max_pool2d, F.relu, torch.relu}
_PASS_MODULES = (nn.MaxPool2d, nn.Flatten, nn.ReLU, nn.Identity, nn.Dropout)
_POOL_MODULES = (nn.AdaptiveAvgPool2d, nn.AvgPool2d)
_PASS_METHODS = {"relu", "flatten"}
_SHAPE_METHODS = {"size", "dim", "numel"}
ACT_PREFIX = "act_quant"
LEAF_TYPES = (ActQuant, QuantWeight, Int4Linear)
#: Attribute a restore handler may set on its model: the report its rebuild produced.
RESTORED_REPORT_ATTR = "_slimkit_restored_report"


@dataclass
class QuantReport:
    """What was quantized and what was left in float, and why."""

    quantized: list[str] = field(default_factory=list)
    float_ops: list[dict[str, str]] = field(default_factory=list)
    folded: list[list[str]] = field(default_factory=list)
    reduced_range: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantized": self.quantized,
            "float_ops": self.float_ops,
            "folded": self.folded,
            "reduced_range": self.reduced_range,
        }


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """True if ``name`` equals or fnmatches one of ``patterns``."""
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def check_exclude(model: nn.Module, exclude: tuple[str, ...], types: tuple[type, ...]) -> None:
    """Raise ValueError for an exclusion pattern matching no layer (likely a typo)."""
    names = [n for n, m in model.named_modules() if isinstance(m, types)]
    unknown = [p for p in exclude if not any(matches(n, (p,)) for n in names)]
    if unknown:
        raise ValueError(
            f"exclude patterns {unknown} match no layer; layers are: {', '.join(names)}"
        )


class _Tracer(fx.Tracer):
    """Keeps slimkit's quantized modules as single graph nodes, like built-in layers."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, LEAF_TYPES) or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` into an FX graph; untraceable models raise :class:`UnsupportedOpError`."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as err:  # fx raises many types for data-dependent control flow
        raise UnsupportedOpError(
            f"static quantization needs a traceable model, and torch.fx failed: {err}; "
            "use a weight-only or dynamic scheme, or make the forward free of data-dependent "
            "control flow"
        ) from None


def target_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


class _Placer:
    """Walks a graph once, classifying nodes and inserting :class:`ActQuant` modules."""

    def __init__(self, gm: fx.GraphModule, make: Callable[[], ActQuant], exclude: tuple[str, ...]):
        self.gm, self.make, self.exclude = gm, make, exclude
        self.modules = dict(gm.named_modules())
        self.report = QuantReport()
        self.fused: set[fx.Node] = set()

    def kind(self, node: fx.Node) -> str:
        if node.op == "call_module":
            module = self.modules[str(node.target)]
            if isinstance(module, QuantWeight):
                return "quant"
            if isinstance(module, _POOL_MODULES):
                return "quant"
            return "pass" if isinstance(module, _PASS_MODULES) else "float"
        if node.op == "call_function":
            if node.target in (operator.add, torch.add):
                return "quant" if all(isinstance(a, fx.Node) for a in node.args[:2]) else "float"
            if node.target in _POOL_FNS:
                return "quant"
            return "pass" if node.target in _PASS_FNS else "float"
        if node.op == "call_method":
            return "pass" if node.target in _PASS_METHODS else "float"
        return node.op

    def is_aq(self, node: Any) -> bool:
        return (
            isinstance(node, fx.Node)
            and node.op == "call_module"
            and str(node.target).startswith(ACT_PREFIX + ".")
        )

    def insert_after(self, node: fx.Node, aq: ActQuant) -> fx.Node:
        name = f"{ACT_PREFIX}.{node.name}"
        self.gm.add_submodule(name, aq)
        with self.gm.graph.inserting_after(node):
            new = self.gm.graph.call_module(name, (node,))
        node.replace_all_uses_with(new, delete_user_cb=lambda user: user is not new)
        return new

    def feeds_output(self, node: fx.Node) -> bool:
        return any(user.op == "output" for user in node.users)

    def tensor_inputs(self, node: fx.Node) -> list[fx.Node]:
        count = 2 if node.op == "call_function" and node.target in (operator.add, torch.add) else 1
        return [a for a in node.args[:count] if isinstance(a, fx.Node)]

    def fused_relu(self, node: fx.Node) -> fx.Node | None:
        if len(node.users) != 1:
            return None
        (user,) = node.users
        if user.op == "call_module" and isinstance(self.modules.get(str(user.target)), nn.ReLU):
            return user
        if (user.op == "call_function" and user.target in _RELU_FNS) or (
            user.op == "call_method" and user.target == "relu"
        ):
            return user
        return None

    def visit_quant(self, node: fx.Node) -> None:
        for arg in self.tensor_inputs(node):
            if not self.is_aq(arg):
                self.insert_after(arg, self.make())
        # A module's path names it; a function gets its op in brackets ("add_3 (add)").
        self.report.quantized.append(
            str(node.target) if node.op == "call_module" else self.label(node)
        )
        out = self.fused_relu(node) or node
        if out is not node:
            self.fused.add(out)
        if not self.feeds_output(out):
            self.insert_after(out, self.make())

    def visit_pass(self, node: fx.Node) -> None:
        source = node.args[0] if node.args else None
        if self.is_aq(source) and not self.feeds_output(node):
            assert isinstance(source, fx.Node)
            self.insert_after(node, ActQuant(source=str(source.target)))

    def visit_float(self, node: fx.Node) -> None:
        if node.op == "call_method" and node.target in _SHAPE_METHODS:
            return
        if node.op == "call_function" and node.target in (getattr, operator.getitem):
            return
        module = self.modules.get(str(node.target)) if node.op == "call_module" else None
        excluded = isinstance(module, WEIGHTED_TYPES) and matches(str(node.target), self.exclude)
        reason = "excluded by the config" if excluded else "no int8 kernel in slimkit's rules"
        self.report.float_ops.append({"node": node.name, "op": self.label(node), "reason": reason})

    def label(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{node.target} ({type(self.modules[str(node.target)]).__name__})"
        return f"{node.name} ({target_name(node)})"

    def drop_identities(self) -> None:
        # A folded BatchNorm is an Identity; removed, its conv's ReLU can be fused.
        for node in list(self.gm.graph.nodes):
            if node.op == "call_module" and isinstance(self.modules[str(node.target)], nn.Identity):
                node.replace_all_uses_with(node.args[0])
                self.gm.graph.erase_node(node)

    def run(self) -> QuantReport:
        self.drop_identities()
        for node in list(self.gm.graph.nodes):
            if node in self.fused:
                continue
            kind = self.kind(node)
            if kind == "quant":
                self.visit_quant(node)
            elif kind == "pass":
                self.visit_pass(node)
            elif kind == "float":
                self.visit_float(node)
        self.gm.graph.lint()
        self.gm.recompile()
        return self.report


def quantizable(module: nn.Module) -> bool:
    """False for convs whose padding mode (reflect, circular) the int8 kernels lack."""
    return getattr(module, "padding_mode", "zeros") == "zeros"


def swap_weighted(
    model: nn.Module,
    exclude: tuple[str, ...],
    build: Callable[[nn.Module], nn.Module],
    types: tuple[type[nn.Module], ...] = WEIGHTED_TYPES,
) -> list[str]:
    """Replace every Conv/Linear (of ``types``) not excluded by ``build(module)``; return names."""
    names = []
    for name, module in list(model.named_modules()):
        if type(module) in types and not matches(name, exclude) and quantizable(module):
            set_module(model, name, build(module))
            names.append(name)
    return names


def place_act_quant(
    gm: fx.GraphModule, observer: str, percentile: float, exclude: tuple[str, ...]
) -> QuantReport:
    """Insert observing :class:`ActQuant` modules into ``gm`` in place; return the report."""

    def make() -> ActQuant:
        return ActQuant(make_observer(observer, percentile))

    return _Placer(gm, make, exclude).run()


def act_quants(gm: nn.Module) -> dict[str, ActQuant]:
    """The model's activation quantizers by module name, in graph order."""
    return {n: m for n, m in gm.named_modules() if isinstance(m, ActQuant)}


def set_mode(gm: nn.Module, mode: str) -> None:
    for module in act_quants(gm).values():
        module.mode = mode


def freeze_act_quants(gm: fx.GraphModule) -> None:
    """Fix every activation's scale and zero point from its observer (shared ones copy theirs)."""
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        aq = modules.get(str(node.target)) if node.op == "call_module" else None
        if isinstance(aq, ActQuant):
            if aq.source is not None:
                src = modules[aq.source]
                assert isinstance(src, ActQuant)
                aq.scale.copy_(src.scale)
                aq.zero_point.copy_(src.zero_point)
            aq.freeze()


def input_act_quant(gm: fx.GraphModule, node: fx.Node) -> ActQuant | None:
    """The :class:`ActQuant` producing the first input of ``node``, if there is one."""
    arg = node.args[0] if node.args else None
    if isinstance(arg, fx.Node) and arg.op == "call_module":
        module = gm.get_submodule(str(arg.target))
        return module if isinstance(module, ActQuant) else None
    return None


def round_biases(gm: fx.GraphModule) -> None:
    """Put each quantized layer's bias on the int32 grid its runtime kernel uses."""
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        layer = gm.get_submodule(str(node.target))
        source = input_act_quant(gm, node)
        if isinstance(layer, QuantWeight) and source is not None:
            layer.round_bias(float(source.scale))
