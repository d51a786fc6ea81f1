"""Tracing: run the model once in eager mode and propagate channel labels through every op.

Every torch function called during the forward pass is intercepted with a
:class:`~torch.overrides.TorchFunctionMode`, so tracing runs exactly the code the user runs
(data-dependent Python, ``torch._assert``, method calls on tensors) with the real operation
and its real arguments in hand: a rule per op name says how the channel labels of its inputs
map onto its outputs. Modules with parameters whose semantics are known (convolutions, linear
layers, norms, attention) are traced as single leaves by a module handler instead. An op
without a rule blocks every channel that reaches it and is reported by module path and op
name, so an unknown op can only make pruning more conservative, never wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import UnsupportedOpError
from ._labels import Labels, UnionFind

Dims = tuple[Labels | None, ...]  # per tensor dimension: the channel labels, or None (not pruned)
PositionKey = tuple[str, str, int]  # (module path, parameter or buffer name, dimension)
BindingKey = tuple[str, str, int | None]  # (module path, attribute, index in a tuple attribute)

#: Attribute names that hold a width and are updated when that width is pruned, if a reshape
#: in the module's forward passes their value literally (e.g. ViT's ``self.hidden_dim``).
WIDTH_ATTRS: list[str] = [
    "hidden_dim",
    "embed_dim",
    "head_dim",
    "num_heads",
    "n_heads",
    "hidden_size",
    "all_head_size",
    "attention_head_size",
    "num_attention_heads",
    "intermediate_size",
    "mlp_dim",
    "feat_dim",
    "inner_dim",
    "d_model",
    "dim",
    "channels",
    "num_channels",
    "width",
]


@dataclass
class OpCall:
    """One intercepted call: what ran, where, and its tensors (flattened in argument order)."""

    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    ins: list[torch.Tensor]
    outs: list[torch.Tensor]
    where: str

    def arg(self, index: int, key: str, default: Any = None) -> Any:
        """Positional argument ``index`` or keyword ``key``."""
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(key, default)

    def describe(self) -> str:
        return f"op {self.name!r} in {self.where}"


@dataclass
class OpRecord:
    """What one traced op consumed and produced, for verifying the pruned model's shapes."""

    name: str
    where: str
    in_dims: list[Dims]
    out_shapes: list[tuple[int, ...]]
    out_dims: list[Dims]
    stack: tuple[str, ...] = ()  # module paths enclosing the op, outermost first


@dataclass
class TraceContext:
    """State of one trace: labels of live tensors, parameter positions, attribute bindings."""

    model: nn.Module
    uf: UnionFind = field(default_factory=UnionFind)
    positions: dict[PositionKey, Labels] = field(default_factory=dict)
    bindings: dict[BindingKey, Labels] = field(default_factory=dict)
    records: list[OpRecord] = field(default_factory=list)
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    failed: tuple[int, str, str] | None = None
    stack: list[str] = field(default_factory=list)
    leaf_depth: int = 0
    created: dict[str, list[Labels]] = field(default_factory=dict)
    entries: dict[str, list[Dims]] = field(default_factory=dict)
    attr_bound: set[int] = field(default_factory=set)  # ids of label arrays whose width is bound
    _infos: dict[int, tuple[torch.Tensor, Dims]] = field(default_factory=dict)
    _params: dict[int, tuple[str, str]] = field(default_factory=dict)
    _paths: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path, module in self.model.named_modules():
            self._paths[id(module)] = path
            for name, tensor in [*module._parameters.items(), *module._buffers.items()]:
                if tensor is not None and id(tensor) not in self._params:
                    self._params[id(tensor)] = (path, name)

    # -- where we are -----------------------------------------------------------------------
    @property
    def where(self) -> str:
        path = self.stack[-1] if self.stack else ""
        module = self.model.get_submodule(path)
        return f"{path or '<root>'} ({type(module).__name__})"

    def path_of(self, module: nn.Module) -> str:
        return self._paths.get(id(module), "?")

    def owner(self, tensor: torch.Tensor) -> tuple[str, str] | None:
        """(module path, name) when ``tensor`` is a parameter or buffer of the model."""
        return self._params.get(id(tensor))

    # -- labels of tensors ------------------------------------------------------------------
    def dims(self, tensor: torch.Tensor) -> Dims:
        """Labels of each dimension of ``tensor`` (all None for constants and inputs)."""
        entry = self._infos.get(id(tensor))
        if entry is not None and entry[0] is tensor:
            return entry[1]
        owner = self.owner(tensor)
        if owner is None:
            return (None,) * tensor.dim()
        # A parameter used directly in an op (a class token, a layer scale): each dimension
        # gets passive labels, pruned only if they end up coupled with a layer's channels.
        dims = tuple(self.position(*owner, d, self.uf.new(n)) for d, n in enumerate(tensor.shape))
        self.set(tensor, dims)
        return dims

    def tracked(self, tensor: torch.Tensor) -> bool:
        entry = self._infos.get(id(tensor))
        return (entry is not None and entry[0] is tensor) or id(tensor) in self._params

    def set(self, tensor: torch.Tensor, dims: Sequence[Labels | None]) -> None:
        if len(dims) != tensor.dim():
            raise RuntimeError(f"internal: {len(dims)} label dims for a {tensor.dim()}-d tensor")
        self._infos[id(tensor)] = (tensor, tuple(dims))

    # -- what pruning touches ---------------------------------------------------------------
    def position(self, path: str, tensor: str, dim: int, labels: Labels) -> Labels:
        """Record that index ``i`` of ``path.tensor`` along ``dim`` is channel ``labels[i]``."""
        key = (path, tensor, dim)
        known = self.positions.get(key)
        if known is None:
            self.positions[key] = labels
            return labels
        self.uf.union_arrays(known, labels)  # a module called twice: both calls share channels
        return known

    def fresh(self, path: str, tensor: str, dim: int, count: int) -> Labels:
        """New source channels created by a layer (reused when the layer runs again)."""
        known = self.positions.get((path, tensor, dim))
        if known is not None:
            return known
        labels = self.position(path, tensor, dim, self.uf.new(count))
        self.mark_source(path, labels)
        return labels

    def mark_source(self, path: str, labels: Labels) -> None:
        """``labels`` are output channels created by the layer at ``path``: they can be pruned."""
        self.uf.sources.update(labels.tolist())
        self.created.setdefault(path, []).append(labels)

    def bind(self, path: str, attr: str, labels: Labels, index: int | None = None) -> None:
        """After pruning, set ``path.attr`` (or its element ``index``) to the kept count."""
        key = (path, attr, index)
        known = self.bindings.get(key)
        if known is None:
            self.bindings[key] = labels
        elif len(known) == len(labels):
            self.uf.union_arrays(known, labels)
        else:
            self.block(labels, f"attribute {path}.{attr} is bound to two widths")

    def block(self, labels: Labels | None, reason: str) -> None:
        if labels is not None and len(labels):
            self.uf.block(labels, reason)

    def block_all(self, tensors: Sequence[torch.Tensor], reason: str) -> None:
        for tensor in tensors:
            for labels in self.dims(tensor):
                self.block(labels, reason)

    def report_unsupported(self, call: OpCall) -> None:
        self.unsupported.setdefault(call.name, [])
        if call.where not in self.unsupported[call.name]:
            self.unsupported[call.name].append(call.where)


Rule = Callable[[TraceContext, OpCall], list[Dims]]
ModuleHandler = Callable[[TraceContext, str, nn.Module, tuple[Any, ...], dict[str, Any], Any], None]

#: Op name → rule mapping input labels to output labels. Filled by ``_rules``.
RULES: dict[str, Rule] = {}
#: Exact module type → handler tracing the module as one leaf. Filled by ``_modules``.
MODULE_HANDLERS: dict[type, ModuleHandler] = {}


def register_op_rule(name: str, rule: Rule) -> None:
    """Teach the tracer an op: ``rule(ctx, call)`` returns the labels of each output tensor.

    ``name`` is the function or method name (``"add"``, ``"view"``, ``"my_op"``).
    """
    RULES[name] = rule


def register_module_handler(module_type: type[nn.Module], handler: ModuleHandler) -> None:
    """Trace modules of exactly ``module_type`` as leaves handled by ``handler``.

    The handler is called after the module ran as ``handler(ctx, path, module, args, kwargs,
    output)``. It reads input labels with ``ctx.dims(tensor)``, records which parameter
    dimensions carry which channels with ``ctx.position`` / ``ctx.fresh``, binds width
    attributes with ``ctx.bind``, and labels the outputs with ``ctx.set``.
    """
    MODULE_HANDLERS[module_type] = handler


def op_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", repr(func))
    if name == "__get__":  # a tensor property such as .T or .data
        return getattr(getattr(func, "__self__", None), "__name__", name)
    return name


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor)]


class _Mode(TorchFunctionMode):
    def __init__(self, ctx: TraceContext) -> None:
        super().__init__()
        self.ctx = ctx

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        ctx = self.ctx
        if ctx.leaf_depth:
            return func(*args, **kwargs)
        name = op_name(func)
        if name == "__iter__" and args and isinstance(args[0], torch.Tensor):
            func, name = torch.Tensor.unbind, "unbind"  # iterating a tensor is unbind(0)
            result = self._call(func, name, args, kwargs)
            return iter(result)
        return self._call(func, name, args, kwargs)

    def _call(self, func: Callable[..., Any], name: str, args: Any, kwargs: Any) -> Any:
        ctx = self.ctx
        try:
            out = func(*args, **kwargs)
        except Exception:
            ctx.failed = (len(ctx.records), name, ctx.where)
            raise
        outs = _tensors(out)
        ins = _tensors((args, kwargs))
        if not outs or not any(ctx.tracked(t) for t in ins):
            return out
        call = OpCall(name, func, tuple(args), dict(kwargs), ins, outs, ctx.where)
        out_dims = self._propagate(call)
        in_dims = [ctx.dims(t) for t in ins]
        for tensor, dims in zip(outs, out_dims, strict=True):
            ctx.set(tensor, dims)
        ctx.records.append(
            OpRecord(
                name,
                call.where,
                in_dims,
                [tuple(t.shape) for t in outs],
                out_dims,
                tuple(ctx.stack),
            )
        )
        return out

    def _propagate(self, call: OpCall) -> list[Dims]:
        ctx, rule = self.ctx, RULES.get(call.name)
        if rule is not None:
            try:
                return rule(ctx, call)
            except Exception as err:  # a rule meeting arguments it does not know: be safe
                ctx.block_all(call.ins, f"{call.describe()}: its rule failed ({err})")
                return [(None,) * t.dim() for t in call.outs]
        ctx.report_unsupported(call)
        ctx.block_all(call.ins, f"unsupported {call.describe()}")
        return [(None,) * t.dim() for t in call.outs]


def _install_hooks(ctx: TraceContext) -> list[torch.utils.hooks.RemovableHandle]:
    def pre(module: nn.Module, args: Any, kwargs: Any) -> None:
        path = ctx.path_of(module)
        ctx.stack.append(path)
        if not ctx.leaf_depth:  # what enters each module, to freeze it if it misbehaves
            entry = [ctx.dims(t) for t in _tensors((args, kwargs)) if ctx.tracked(t)]
            ctx.entries.setdefault(path, []).extend(entry)
        if ctx.leaf_depth:
            ctx.leaf_depth += 1
        elif type(module) in MODULE_HANDLERS:
            ctx.leaf_depth = 1

    def post(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        path = ctx.stack.pop()
        if not ctx.leaf_depth:
            return
        ctx.leaf_depth -= 1
        if ctx.leaf_depth == 0:
            ctx.stack.append(path)  # so that reasons name the module itself
            try:
                before = [ctx.dims(t) for t in _tensors((args, kwargs))]
                try:
                    MODULE_HANDLERS[type(module)](ctx, path, module, args, kwargs, output)
                except Exception as err:  # a handler meeting an unknown variant: be safe
                    reason = f"handler of {ctx.where} failed ({err})"
                    ctx.block_all(_tensors((args, kwargs)), reason)
                    for labels_list in ctx.created.get(path, []):
                        ctx.block(labels_list, reason)
                    for tensor in _tensors(output):
                        ctx.set(tensor, (None,) * tensor.dim())
                outs = _tensors(output)
                ctx.records.append(
                    OpRecord(
                        type(module).__name__,
                        ctx.where,
                        before,
                        [tuple(t.shape) for t in outs],
                        [ctx.dims(t) for t in outs],
                        tuple(ctx.stack),
                    )
                )
            finally:
                ctx.stack.pop()

    handles = []
    for module in ctx.model.modules():
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    return handles


def call_model(model: nn.Module, example_inputs: Any) -> Any:
    """Call ``model`` on a tensor, a tuple of positional inputs, or a dict of keyword inputs."""
    if isinstance(example_inputs, dict):
        return model(**example_inputs)
    if isinstance(example_inputs, list | tuple):
        return model(*example_inputs)
    return model(example_inputs)


@torch.no_grad()
def trace(model: nn.Module, example_inputs: Any, *, strict: bool = True) -> TraceContext:
    """Run ``model`` once on ``example_inputs`` in eval mode, propagating channel labels.

    Args:
        model: the model (left unchanged; its train/eval mode is restored).
        example_inputs: a tensor, a tuple of positional inputs or a dict of keyword inputs.
        strict: raise :class:`UnsupportedOpError` if the forward pass fails; otherwise return
            the context with ``failed`` set (used to locate failures in a pruned model).

    Raises:
        UnsupportedOpError: if the model cannot run under tracing.
    """
    from . import _modules, _rule_table  # noqa: F401  (registers the rules and handlers)

    ctx = TraceContext(model)
    was_training = model.training
    model.eval()
    handles = _install_hooks(ctx)
    try:
        with _Mode(ctx):
            output = call_model(model, example_inputs)
    except Exception as err:
        if not strict:
            ctx.failed = ctx.failed or (len(ctx.records), type(err).__name__, ctx.where)
            return ctx
        where = f" at op {ctx.failed[1]!r} in {ctx.failed[2]}" if ctx.failed else f" in {ctx.where}"
        raise UnsupportedOpError(
            f"cannot trace {type(model).__name__}: its forward pass failed{where} with "
            f"{type(err).__name__}: {err}; check that example_inputs run through model(...) "
            "as given (a tensor, a tuple of positional inputs or a dict of keyword inputs)"
        ) from err
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for tensor in _tensors(output):
        for labels in ctx.dims(tensor):
            ctx.block(labels, "reaches the model output (its shape must not change)")
    return ctx
