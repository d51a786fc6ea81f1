"""How channel labels flow through torch functions and tensor methods, op by op.

Each rule maps the labels of an op's inputs onto its outputs and joins the labels of channels
that must be removed together. A rule that meets a case it cannot represent blocks the labels
involved (with the op and module in the reason) instead of guessing.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from ._labels import Labels
from ._trace import WIDTH_ATTRS, Dims, OpCall, TraceContext, register_op_rule

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


def _dim_list(dim: Any, ndim: int) -> list[int]:
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
    reduced = _dim_list(dim, x.dim())
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


# -- layout -----------------------------------------------------------------------------------


def _reshape_groups(
    src: tuple[int, ...], dst: tuple[int, ...]
) -> list[tuple[list[int], list[int]]]:
    """Pair runs of source and destination dimensions whose sizes multiply to the same value."""
    a = [i for i, s in enumerate(src) if s != 1]
    b = [i for i, s in enumerate(dst) if s != 1]
    groups, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        gi, go = [a[i]], [b[j]]
        pi, po = src[a[i]], dst[b[j]]
        i, j = i + 1, j + 1
        while pi != po:
            if pi < po and i < len(a):
                gi.append(a[i])
                pi, i = pi * src[a[i]], i + 1
            elif po < pi and j < len(b):
                go.append(b[j])
                po, j = po * dst[b[j]], j + 1
            else:
                break
        groups.append((gi, go))
    return groups


def reshape_dims(
    ctx: TraceContext, x: torch.Tensor, xd: Dims, shape: tuple[int, ...], call: OpCall
) -> Dims:
    """Labels after a view/reshape/flatten/squeeze, including channel × spatial flattening."""
    out: list[Labels | None] = [None] * len(shape)
    src = tuple(x.shape)
    for gi, go in _reshape_groups(src, shape):
        labeled = [d for d in gi if xd[d] is not None]
        if not labeled:
            continue
        if len(gi) == 1 and len(go) == 1:
            out[go[0]] = xd[gi[0]]
            continue
        if len(labeled) > 1:
            for d in labeled:
                ctx.block(xd[d], f"{call.describe()} merges two channel dimensions")
            continue
        _split_merge(ctx, xd, src, shape, gi, go, labeled[0], out, call)
    return tuple(out)


def _split_merge(
    ctx: TraceContext,
    xd: Dims,
    src: tuple[int, ...],
    shape: tuple[int, ...],
    gi: list[int],
    go: list[int],
    labeled: int,
    out: list[Labels | None],
    call: OpCall,
) -> None:
    # Spread the labels over the group's source dims, then read them back in the new layout.
    sizes = [src[d] for d in gi]
    view = [1] * len(gi)
    view[gi.index(labeled)] = src[labeled]
    labels = xd[labeled]
    assert labels is not None
    grid = np.broadcast_to(labels.reshape(view), sizes).reshape([shape[d] for d in go])
    varying = [ax for ax in range(grid.ndim) if not np.all(grid == grid.take([0], axis=ax))]
    if not varying:
        return
    carrier = varying[-1]
    heads = _heads_owner(ctx, grid.shape[varying[0]]) if len(varying) == 2 else None
    if heads is not None:
        # (heads, head_dim) inside a module that counts heads: prune whole heads.
        carrier = varying[0]
        rows = np.moveaxis(grid, carrier, 0).reshape(grid.shape[carrier], -1)
        for row in rows:
            ctx.uf.union_all(row)
        module = ctx.model.get_submodule(heads[0])
        for attr in TOTAL_ATTRS:
            if vars(module).get(attr) == labels.size:
                ctx.bind(heads[0], attr, labels)
    elif len(varying) > 1:
        # A channel dim split into e.g. (groups, per_group) or (heads, head_dim): prune the
        # inner dimension uniformly, so positions i of every outer block go together.
        moved = np.moveaxis(grid, carrier, -1).reshape(-1, grid.shape[carrier])
        for row in moved[1:]:
            ctx.uf.union_arrays(moved[0], row)
    line = np.ascontiguousarray(
        np.moveaxis(grid, carrier, 0).reshape(grid.shape[carrier], -1)[:, 0]
    )
    out[go[carrier]] = line
    if heads is not None:
        ctx.bind(heads[0], heads[1], line)
        ctx.attr_bound.add(id(line))  # the head count is bound: literal sizes skip it


#: Attributes counting attention heads, and holding heads × head size.
HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads")
TOTAL_ATTRS = ("all_head_size", "inner_dim")


def _heads_owner(ctx: TraceContext, count: int) -> tuple[str, str] | None:
    """The enclosing module and attribute that count ``count`` heads, if any."""
    for path in reversed(ctx.stack):
        module = ctx.model.get_submodule(path)
        attr = next((a for a in HEAD_ATTRS if vars(module).get(a) == count), None)
        if attr is not None:
            return path, attr
    return None


def _bind_literal_sizes(ctx: TraceContext, call: OpCall, dims: Dims) -> None:
    """A reshape that passes a width literally (``view(n, self.hidden_dim, -1)``) needs the
    attribute updated when that width shrinks: find it on the enclosing modules."""
    sizes = call.args[1:] if len(call.args) > 1 else call.kwargs.get("shape", ())
    if len(sizes) == 1 and isinstance(sizes[0], list | tuple | torch.Size):
        sizes = tuple(sizes[0])
    if len(sizes) != len(dims):
        return
    for size, labels in zip(sizes, dims, strict=True):
        if labels is None or not isinstance(size, int) or size < 0 or id(labels) in ctx.attr_bound:
            continue
        for path in reversed(ctx.stack):
            module = ctx.model.get_submodule(path)
            attr = next((a for a in WIDTH_ATTRS if vars(module).get(a) == size), None)
            if attr is not None:
                ctx.bind(path, attr, labels)
                break


def reshape(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x = call.ins[0]
    dims = [reshape_dims(ctx, x, ctx.dims(x), tuple(out.shape), call) for out in call.outs]
    if call.name in ("view", "reshape"):
        _bind_literal_sizes(ctx, call, dims[0])
    return dims


def permute(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Any axis permutation: replay it on a meta tensor of distinct sizes to read the order."""
    x = call.ins[0]
    probe = torch.empty([d + 2 for d in range(x.dim())], device="meta")
    order = [s - 2 for s in call.func(probe, *call.args[1:], **call.kwargs).shape]
    xd = ctx.dims(x)
    return [tuple(xd[d] for d in order)]


def expand(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x, out = call.ins[0], call.outs[0]
    xd, n = ctx.dims(x), out.dim()
    dims: list[Labels | None] = []
    for k in range(n):
        j = x.dim() - (n - k)
        dims.append(xd[j] if j >= 0 and x.shape[j] == out.shape[k] else None)
    return [tuple(dims)]


def repeat(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x, out = call.ins[0], call.outs[0]
    xd, n = ctx.dims(x), out.dim()
    dims: list[Labels | None] = []
    for k in range(n):
        j = x.dim() - (n - k)
        if j >= 0 and x.shape[j] == out.shape[k]:
            dims.append(xd[j])
            continue
        if j >= 0:
            ctx.block(xd[j], f"{call.describe()} repeats channels")
        dims.append(None)
    return [tuple(dims)]


def flip(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x = call.ins[0]
    flipped = _dim_list(call.arg(1, "dims"), x.dim())
    dims = [
        lab[::-1].copy() if (d in flipped and lab is not None) else lab
        for d, lab in enumerate(ctx.dims(x))
    ]
    return [tuple(dims)]


def getitem(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Basic indexing: full slices keep channels; anything else on a channel dim blocks it."""
    x, out = call.ins[0], call.outs[0]
    xd = ctx.dims(x)
    index = call.args[1] if isinstance(call.args[1], tuple) else (call.args[1],)
    lookup = index[0]
    if len(index) == 1 and isinstance(lookup, torch.Tensor) and lookup.dtype != torch.bool:
        # table[idx]: rows are looked up, the other dims (e.g. heads) pass through
        ctx.block(xd[0], f"{call.describe()} looks up positions along dim 0")
        return [(None,) * lookup.dim() + tuple(xd[1:])]
    if any(not isinstance(i, int | slice | type(None) | type(Ellipsis)) for i in index):
        ctx.block_all([x], f"{call.describe()} uses advanced indexing on channels")
        return [(None,) * out.dim()]
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    expanded: list[Any] = []
    for i in index:
        if i is Ellipsis:
            expanded.extend([slice(None)] * (x.dim() - consumed))
        else:
            expanded.append(i)
    expanded.extend([slice(None)] * (x.dim() - sum(1 for i in expanded if i is not None)))
    dims: list[Labels | None] = []
    d = 0
    for i in expanded:
        if i is None:
            dims.append(None)
            continue
        labels = xd[d]
        whole = (isinstance(i, slice) and i == slice(None)) or (
            isinstance(i, slice) and range(*i.indices(x.shape[d])) == range(x.shape[d])
        )
        if not whole:
            ctx.block(labels, f"{call.describe()} selects part of a channel dimension")
        if not isinstance(i, int):
            dims.append(labels if whole else None)
        d += 1
    return [tuple(dims) if len(dims) == out.dim() else (None,) * out.dim()]


def select_like(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """select/narrow/index_select/gather along a dim: channel positions would shift."""
    x = call.ins[0]
    xd = ctx.dims(x)
    dim = call.arg(1, "dim")
    dim = dim % x.dim() if isinstance(dim, int) else None
    out = call.outs[0]
    if dim is None:
        ctx.block_all([x], f"{call.describe()} indexes channels")
        return [(None,) * o.dim() for o in call.outs]
    if out.dim() == x.dim() and out.shape[dim] == x.shape[dim]:
        return [xd]
    ctx.block(xd[dim], f"{call.describe()} indexes a channel dimension")
    kept = [lab if d != dim else None for d, lab in enumerate(xd)]
    if out.dim() < x.dim():
        del kept[dim]
    return [tuple(kept) if out.dim() == len(kept) else (None,) * out.dim()]


def split(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """chunk into equal pieces: position i of every piece goes together."""
    x = call.ins[0]
    xd = ctx.dims(x)
    dim = (call.arg(1, "dim", 0) if call.name == "unbind" else call.arg(2, "dim", 0)) % x.dim()
    labels = xd[dim]
    sizes = [o.shape[dim] if o.dim() == x.dim() else 0 for o in call.outs]
    pieces: list[Labels | None] = [None] * len(call.outs)
    # split() and tensor_split(indices) name their pieces' sizes: pruned channels would move
    # the cut (Res2Net's split by width, MixNet's mixed kernels); chunk() names a count.
    sized = call.name == "split" or (
        call.name == "tensor_split" and not isinstance(call.arg(1, "sections", None), int)
    )
    if labels is not None:
        if call.name == "unbind" or len(set(sizes)) != 1 or sizes[0] == 0:
            ctx.block(labels, f"{call.describe()} splits channels into unequal pieces")
        elif sized:
            ctx.block(labels, f"{call.describe()} splits channels into pieces of fixed sizes")
        else:
            pieces = list(labels.reshape(len(call.outs), sizes[0]))
            for piece in pieces[1:]:
                ctx.uf.union_arrays(pieces[0], piece)  # type: ignore[arg-type]
    result = []
    for out, piece in zip(call.outs, pieces, strict=True):
        dims = list(xd)
        if out.dim() == x.dim():
            dims[dim] = piece
        else:
            del dims[dim]
        result.append(tuple(dims))
    return result


def cat(ctx: TraceContext, call: OpCall) -> list[Dims]:
    """Concatenation: channels of the output are the inputs' channels at their offsets."""
    out = call.outs[0]
    parts = [t for t in call.ins if t.dim() == out.dim()]  # torch.cat skips empty 1-d tensors
    dim = call.arg(1, "dim", 0) % out.dim()
    dims = list(broadcast(ctx, parts, tuple(out.shape), call))
    if all(ctx.dims(t)[dim] is None for t in parts):
        dims[dim] = None
        return [tuple(dims)]
    pieces = []
    for t in parts:
        labels = ctx.dims(t)[dim]
        if labels is None:  # channels of a constant or an input: fixed positions
            labels = ctx.uf.new(t.shape[dim])
            ctx.block(labels, f"{call.describe()} concatenates fixed-size channels")
        pieces.append(labels)
    dims[dim] = np.concatenate(pieces)
    return [tuple(dims)]


def stack(ctx: TraceContext, call: OpCall) -> list[Dims]:
    out = call.outs[0]
    dim = call.arg(1, "dim", 0) % out.dim()
    inner = tuple(s for d, s in enumerate(out.shape) if d != dim)
    dims = list(broadcast(ctx, list(call.ins), inner, call))
    dims.insert(dim, None)
    return [tuple(dims)]


def pad(ctx: TraceContext, call: OpCall) -> list[Dims]:
    x = call.ins[0]
    amounts = list(call.arg(1, "pad"))
    xd = ctx.dims(x)
    padded = list(xd)
    for k in range(len(amounts) // 2):
        if amounts[2 * k] or amounts[2 * k + 1]:
            ctx.block(xd[x.dim() - 1 - k], f"{call.describe()} pads a channel dimension")
            padded[x.dim() - 1 - k] = None  # its new positions come from no input channel
    return [tuple(padded) if out.dim() == x.dim() else (None,) * out.dim() for out in call.outs]


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


_RULES = {
    pointwise: _POINTWISE,
    first_operand: "to type_as normalize cpu cuda",
    constant: "new_zeros new_ones new_empty new_full new_tensor",
    reduction: "sum mean amax amin max min norm std var logsumexp prod nansum nanmean any all "
    "median argmax argmin count_nonzero",
    along_dim: "softmax log_softmax softmin cumsum cumprod logcumsumexp",
    reshape: "view reshape flatten unflatten squeeze squeeze_ unsqueeze unsqueeze_ view_as "
    "reshape_as ravel",
    permute: "permute transpose transpose_ t movedim moveaxis swapaxes swapdims T mT",
    expand: "expand expand_as broadcast_to",
    repeat: "repeat tile",
    flip: "flip",
    getitem: "__getitem__",
    select_like: "select narrow index_select gather take_along_dim",
    split: "chunk split tensor_split unsafe_chunk unbind",
    cat: "cat concat concatenate",
    stack: "stack",
    pad: "pad",
    spatial: "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d "
    "adaptive_max_pool2d adaptive_max_pool3d avg_pool1d avg_pool2d avg_pool3d max_pool1d "
    "max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices "
    "max_pool3d_with_indices _max_pool1d _max_pool2d _max_pool3d lp_pool1d lp_pool2d "
    "interpolate upsample upsample_nearest upsample_bilinear",
    matmul: "matmul __matmul__ mm bmm baddbmm",
    linear: "linear",
    conv: "conv1d conv2d conv3d",
    layer_norm: "layer_norm rms_norm",
    batch_norm: "batch_norm instance_norm",
    embedding: "embedding",
    attention: "scaled_dot_product_attention",
    einsum: "einsum",
}
for _rule, _names in _RULES.items():
    for _name in _names.split():
        register_op_rule(_name, _rule)
