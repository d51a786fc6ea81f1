"""How channel labels flow through torch functions and tensor methods, op by op.

Each rule maps the labels of an op's inputs onto its outputs and joins the labels of channels
that must be removed together. A rule that meets a case it cannot represent blocks the labels
involved (with the op and module in the reason) instead of guessing.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ._labels import Labels
from ._trace import Dims, OpCall, TraceContext

# -- pointwise ---------------------------------------------------------------------------------

_POINTWISE = """
add add_ __add__ __radd__ __iadd__ sub sub_ __sub__ __rsub__ __isub__ rsub mul mul_ __mul__
__rmul__ __imul__ div div_ __truediv__ __rtruediv__ __itruediv__ true_divide floor_divide
__floordiv__ pow pow_ __pow__ __rpow__ maximum minimum where masked_fill masked_fill_ addcmul
addcdiv lerp fmod remainder __mod__ atan2 hypot eq ne lt le gt ge __eq__ __ne__ __lt__ __le__
__gt__ __ge__ __and__ __or__ __xor__ __invert__ logical_and logical_or logical_not bitwise_and
bitwise_or relu relu_ relu6 gelu silu silu_ sigmoid sigmoid_ tanh tanh_ hardswish hardswish_
hardsigmoid hardsigmoid_ hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ selu celu mish
softplus softsign logsigmoid tanhshrink threshold threshold_ dropout dropout_ dropout1d dropout2d
dropout3d alpha_dropout feature_alpha_dropout exp exp_ log log_ log1p expm1 abs abs_ __abs__ neg
__neg__ __pos__ sqrt rsqrt erf erfc sign square reciprocal clamp clamp_ clamp_min clamp_max clip
clip_ sin cos logit nan_to_num round floor ceil trunc frac sinh cosh asin acos atan
clone contiguous detach detach_ bernoulli bernoulli_ zeros_like ones_like empty_like full_like
rand_like randn_like requires_grad_ data float half double bfloat16 int long bool
"""


def pointwise(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Broadcasting ops: aligned channel dimensions of all operands become one channel set."""
    return [broadcast(ctx, call.ins, tuple(out.shape), call) for out in call.outs]


Operand = tuple[tuple[int, ...], Dims]  # a shape and its labels


def broadcast(
    ctx: TraceContext, tensors: list[torch.Tensor], shape: tuple[int, ...], call: OpCall
) -> Dims:
    operands = [(tuple(t.shape), ctx.dims(t)) for t in tensors]
    return broadcast_dims(ctx, operands, shape, call)


def broadcast_dims(
    ctx: TraceContext, operands: list[Operand], shape: tuple[int, ...], call: OpCall
) -> Dims:
    n = len(shape)
    dims: list[Labels | None] = []
    for k in range(n):
        labeled: list[Labels] = []
        fixed = False
        for op_shape, op_dims in operands:
            j = len(op_shape) - (n - k)
            if j < 0 or op_shape[j] != shape[k]:
                continue  # absent or broadcast along this dimension
            labels = op_dims[j]
            if labels is None:
                fixed = fixed or shape[k] > 1
            else:
                labeled.append(labels)
        if not labeled:
            dims.append(None)
            continue
        for other in labeled[1:]:
            ctx.uf.union_arrays(labeled[0], other)
        if fixed:
            ctx.block(labeled[0], f"{call.describe()} combines them with fixed-size channels")
        dims.append(labeled[0])
    return tuple(dims)


def first_operand(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Ops that keep the layout of their first tensor (``to``, ``type_as``, ``normalize``)."""
    dims = ctx.dims(call.ins[0])
    return [dims if out.shape == call.ins[0].shape else (None,) * out.dim() for out in call.outs]


def constant(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """New tensors of literal sizes (``new_zeros``): nothing to propagate."""
    return [(None,) * out.dim() for out in call.outs]


# -- reductions and normalisations over a dimension -------------------------------------------


def dim_list(dim: Any, ndim: int) -> list[int]:
    if dim is None:
        return list(range(ndim))
    if isinstance(dim, int):
        return [dim % max(ndim, 1)]
    return [d % ndim for d in dim]


def reduction(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Sums and means over dimensions; fewer channels in a sum is what pruning means."""
    x = call.ins[0]
    xd = ctx.dims(x)
    if call.name in ("max", "min") and isinstance(call.arg(1, "dim"), torch.Tensor):
        return pointwise(ctx, call)
    index = 2 if call.name == "norm" else 1
    dim = call.arg(index, "dim")
    keepdim = call.arg(index + 1, "keepdim", False) is True
    reduced = dim_list(dim, x.dim())
    positional = call.name.startswith("arg") or (call.name in ("max", "min") and dim is not None)
    if positional:  # indices of channels shift when channels are removed
        for d in reduced:
            ctx.block(xd[d], f"{call.describe()} returns channel indices")
    kept = [None if d in reduced else xd[d] for d in range(x.dim()) if keepdim or d not in reduced]
    return [tuple(kept) if out.dim() == len(kept) else (None,) * out.dim() for out in call.outs]


def along_dim(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """softmax/cumsum along one dimension: that dimension's channels must stay whole."""
    x = call.ins[0]
    dim = call.arg(1, "dim")
    xd = ctx.dims(x)
    if isinstance(dim, int):
        ctx.block(xd[dim % x.dim()], f"{call.describe()} mixes channels along dim {dim}")
    return [xd if out.shape == x.shape else (None,) * out.dim() for out in call.outs]


def spatial(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Pooling and resizing: trailing spatial dims change, leading (N, C) dims are kept."""
    x = call.ins[0]
    digits = re.findall(r"([123])d", call.name)
    k = int(digits[0]) if digits else x.dim() - 2
    xd = ctx.dims(x)
    for d in range(x.dim() - k, x.dim()):
        ctx.block(xd[d], f"{call.describe()} pools over a channel dimension")
    dims = tuple(xd[: x.dim() - k]) + (None,) * k
    return [dims if out.dim() == x.dim() else (None,) * out.dim() for out in call.outs]


def matmul(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """a @ b: the contracted dims are one channel set; batch dims broadcast."""
    tensors = call.ins[-2:]  # baddbmm(input, b1, b2): the product is of the last two
    a, b = tensors
    out = call.outs[0]
    if a.dim() < 2 or b.dim() < 2:
        ctx.block_all(call.ins, f"{call.describe()} on vectors")
        return [(None,) * out.dim()]
    ad, bd = ctx.dims(a), ctx.dims(b)
    _join(ctx, ad[-1], bd[-2], call)
    operands = [(tuple(a.shape[:-2]), ad[:-2]), (tuple(b.shape[:-2]), bd[:-2])]
    batch = broadcast_dims(ctx, operands, tuple(out.shape[:-2]), call)
    dims = (*batch, ad[-2], bd[-1])
    if len(call.ins) == 3:  # the added input broadcasts against the product
        ctx.block_all(call.ins[:1], f"{call.describe()} adds a bias of unknown layout")
    return [dims]


def einsum(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Explicit einsum (``"bhid,bhjd->bhij"``): dims sharing a letter are one channel set."""
    equation = str(call.args[0]).replace(" ", "")
    operands = (
        call.args[1]
        if len(call.args) == 2 and isinstance(call.args[1], list | tuple)
        else call.args[1:]
    )
    if "..." in equation or "->" not in equation:
        ctx.block_all(call.ins, f"{call.describe()}: implicit or ellipsis einsum")
        return [(None,) * out.dim() for out in call.outs]
    inputs, output = equation.split("->")
    letters: dict[str, list[tuple[int, Labels | None]]] = {}
    for term, tensor in zip(inputs.split(","), operands, strict=True):
        for axis, letter in enumerate(term):
            letters.setdefault(letter, []).append((tensor.shape[axis], ctx.dims(tensor)[axis]))
    labels: dict[str, Labels | None] = {}
    for letter, seen in letters.items():
        size = max(s for s, _ in seen)
        found = [lab for s, lab in seen if lab is not None and s == size]
        for other in found[1:]:
            ctx.uf.union_arrays(found[0], other)
        if found and any(lab is None and s == size > 1 for s, lab in seen):
            ctx.block(found[0], f"{call.describe()} combines them with fixed-size channels")
        labels[letter] = found[0] if found else None
    return [tuple(labels[letter] for letter in output)]


def _join(ctx: TraceContext, a: Labels | None, b: Labels | None, call: OpCall) -> Labels | None:
    if a is not None and b is not None:
        ctx.uf.union_arrays(a, b)
        return a
    if (a is None) != (b is None):
        ctx.block(a if a is not None else b, f"{call.describe()} contracts with fixed channels")
    return a if a is not None else b


# -- functional layers with parameters ---------------------------------------------------------


def linear(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x, weight = call.args[0], call.arg(1, "weight")
    bias = call.arg(2, "bias")
    xd, wd = ctx.dims(x), ctx.dims(weight)
    _join(ctx, xd[-1], wd[1], call)
    out_labels = wd[0]
    owner = ctx.owner(weight)
    if owner is not None and out_labels is not None:
        ctx.mark_source(owner[0], out_labels)  # a layer's output channels can be pruned
        _bind_layer(ctx, owner[0], {"in_features": wd[1], "out_features": out_labels})
    if isinstance(bias, torch.Tensor):
        _join(ctx, ctx.dims(bias)[0], out_labels, call)
    return [(*xd[:-1], out_labels)]


def conv(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x, weight = call.args[0], call.arg(1, "weight")
    bias = call.arg(2, "bias")
    groups = call.arg(6, "groups", 1)
    xd, wd = ctx.dims(x), ctx.dims(weight)
    cdim = 1 if x.dim() == weight.dim() else 0
    out_labels = wd[0]
    if groups != 1 or out_labels is None:
        ctx.block_all(call.ins, f"{call.describe()}: functional grouped convolution")
    else:
        _join(ctx, xd[cdim], wd[1], call)
        owner = ctx.owner(weight)
        if owner is not None:
            ctx.mark_source(owner[0], out_labels)
    if isinstance(bias, torch.Tensor):
        _join(ctx, ctx.dims(bias)[0], out_labels, call)
    dims: list[Labels | None] = [None] * call.outs[0].dim()
    dims[cdim] = out_labels
    return [tuple(dims)]


def _bind_layer(ctx: TraceContext, path: str, attrs: dict[str, Labels | None]) -> None:
    module = ctx.model.get_submodule(path)
    for attr, labels in attrs.items():
        if labels is not None and isinstance(vars(module).get(attr), int):
            ctx.bind(path, attr, labels)


def layer_norm(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x = call.args[0]
    shape = tuple(call.arg(1, "normalized_shape"))
    xd = list(ctx.dims(x))
    for name, index in (("weight", 2), ("bias", 3)):
        param = call.arg(index, name)
        if isinstance(param, torch.Tensor):
            for j, labels in enumerate(ctx.dims(param)):
                d = x.dim() - len(shape) + j
                xd[d] = _join(ctx, xd[d], labels, call)
    owner = (
        ctx.owner(call.arg(2, "weight"))
        if isinstance(call.arg(2, "weight"), torch.Tensor)
        else None
    )
    for j in range(len(shape)):
        labels = xd[x.dim() - len(shape) + j]
        if labels is None:
            continue
        if owner is not None and isinstance(
            vars(ctx.model.get_submodule(owner[0])).get("normalized_shape"), tuple
        ):
            ctx.bind(owner[0], "normalized_shape", labels, j)
        else:
            ctx.block(labels, f"{call.describe()}: normalized_shape is not an attribute")
    return [tuple(xd)]


def batch_norm(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x = call.args[0]
    xd = list(ctx.dims(x))
    for tensor in call.ins[1:]:
        if tensor.dim() == 1 and x.dim() > 1:
            xd[1] = _join(ctx, xd[1], ctx.dims(tensor)[0], call)
    owner = next((ctx.owner(t) for t in call.ins[1:] if ctx.owner(t)), None)
    if owner is not None and xd[1] is not None:
        _bind_layer(ctx, owner[0], {"num_features": xd[1]})
    return [tuple(xd)]


def embedding(ctx: TraceContext, call: OpCall) -> list[Dims]:
    weight = call.arg(1, "weight")
    wd = ctx.dims(weight)
    owner = ctx.owner(weight)
    if owner is not None and wd[1] is not None:
        ctx.mark_source(owner[0], wd[1])
    out = call.outs[0]
    return [(None,) * (out.dim() - 1) + (wd[1],)]


def attention(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """scaled_dot_product_attention(q, k, v): q·k contracts over the last dim; heads align."""
    q, k, v = call.args[:3]
    qd, kd, vd = ctx.dims(q), ctx.dims(k), ctx.dims(v)
    _join(ctx, qd[-1], kd[-1], call)
    _join(ctx, kd[-2], vd[-2], call)
    batch = tuple(q.shape[:-2])
    operands = [(tuple(t.shape[:-2]), ctx.dims(t)[:-2]) for t in (q, k, v)]
    heads = broadcast_dims(ctx, operands, batch, call)
    for tensor in call.ins[3:]:  # a mask: its layout is unknown
        ctx.block_all([tensor], f"{call.describe()} with an attention mask")
    return [(*heads, qd[-2], vd[-1])]
