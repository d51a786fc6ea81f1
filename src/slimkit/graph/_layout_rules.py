"""How channel labels flow through ops that move, split or join dimensions.

Reshapes (and the attention-head splits and merges they hide), permutations, expansion,
indexing, splitting, concatenation, stacking and padding: see :mod:`._rules` for the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._labels import Labels
from ._rules import broadcast, dim_list
from ._trace import WIDTH_ATTRS, Dims, OpCall, TraceContext

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
    flipped = dim_list(call.arg(1, "dims"), x.dim())
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
