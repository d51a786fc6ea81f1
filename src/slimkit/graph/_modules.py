"""Module handlers: layers with parameters traced as single leaves.

A handler states, for one layer type, which dimension of which parameter carries which input
or output channel, which channels must go together (a convolution group, an attention head),
and which attributes hold widths (``out_channels``, ``num_heads``). Register handlers for
custom layers with :func:`register_module_handler`.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ._labels import Labels
from ._trace import Dims, TraceContext, _tensors, register_module_handler


def _input(args: tuple[Any, ...], kwargs: dict[str, Any], name: str = "input") -> torch.Tensor:
    value = args[0] if args else kwargs.get(name)
    if value is None:
        value = next(iter(kwargs.values()))
    return cast(torch.Tensor, value)


def _set_output(ctx: TraceContext, output: Any, dims: Dims) -> None:
    for tensor in _tensors(output):
        ctx.set(tensor, dims if tensor.dim() == len(dims) else (None,) * tensor.dim())


def _tie_groups(ctx: TraceContext, in_labels: Labels, out_labels: Labels, groups: int) -> None:
    """A grouped convolution: group g's inputs and outputs are removed as one unit."""
    for ins, outs in zip(np.split(in_labels, groups), np.split(out_labels, groups), strict=True):
        ctx.uf.union_all(np.concatenate([ins, outs]))


def conv(ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any) -> None:
    x = _input(args, kwargs)
    cdim = 1 if x.dim() == m.weight.dim() else 0
    in_labels = ctx.dims(x)[cdim]
    transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
    out_dim, in_dim = (1, 0) if transposed else (0, 1)
    out_labels = ctx.fresh(path, "weight", out_dim, m.out_channels)
    if m.groups > 1 and transposed:
        ctx.block(out_labels, f"grouped transposed convolution in {ctx.where}")
        ctx.block(in_labels, f"grouped transposed convolution in {ctx.where}")
    elif m.groups > 1:
        if in_labels is None:
            in_labels = ctx.uf.new(m.in_channels)
            ctx.block(in_labels, f"grouped convolution {ctx.where} on fixed-size input")
        _tie_groups(ctx, in_labels, out_labels, m.groups)
        ctx.bind(path, "groups", out_labels[:: m.out_channels // m.groups])
    elif in_labels is not None:
        ctx.position(path, "weight", in_dim, in_labels)
    if in_labels is not None:
        ctx.bind(path, "in_channels", in_labels)
    ctx.bind(path, "out_channels", out_labels)
    if m.bias is not None:
        ctx.position(path, "bias", 0, out_labels)
    dims: list[Labels | None] = [None] * x.dim()
    dims[cdim] = out_labels
    _set_output(ctx, output, tuple(dims))


def linear(ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any) -> None:
    x = _input(args, kwargs)
    xd = ctx.dims(x)
    out_labels = ctx.fresh(path, "weight", 0, m.out_features)
    if xd[-1] is not None:
        ctx.position(path, "weight", 1, xd[-1])
        ctx.bind(path, "in_features", xd[-1])
    ctx.bind(path, "out_features", out_labels)
    if m.bias is not None:
        ctx.position(path, "bias", 0, out_labels)
    _set_output(ctx, output, (*xd[:-1], out_labels))


def _per_channel(ctx: TraceContext, path: str, m: nn.Module, labels: Labels) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        tensor = getattr(m, name, None)
        if isinstance(tensor, torch.Tensor) and tensor.dim() == 1:
            ctx.position(path, name, 0, labels)


def batch_norm(ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any) -> None:
    x = _input(args, kwargs)
    xd = ctx.dims(x)
    labels = xd[1 if x.dim() > 1 else 0]
    if labels is not None:
        _per_channel(ctx, path, m, labels)
        ctx.bind(path, "num_features", labels)
    _set_output(ctx, output, xd)


def layer_norm(ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any) -> None:
    x = _input(args, kwargs)
    xd = ctx.dims(x)
    k = len(m.normalized_shape)
    for j in range(k):
        labels = xd[x.dim() - k + j]
        if labels is None:
            continue
        for name in ("weight", "bias"):
            if isinstance(getattr(m, name, None), torch.Tensor):
                ctx.position(path, name, j, labels)
        ctx.bind(path, "normalized_shape", labels, j)
    _set_output(ctx, output, xd)


def group_norm(ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any) -> None:
    x = _input(args, kwargs)
    xd = ctx.dims(x)
    labels = xd[1]
    if labels is not None:
        per_group = m.num_channels // m.num_groups
        for block in np.split(labels, m.num_groups):
            ctx.uf.union_all(block)  # group statistics: a group stays whole or goes whole
        _per_channel(ctx, path, m, labels)
        ctx.bind(path, "num_channels", labels)
        ctx.bind(path, "num_groups", labels[::per_group])
    _set_output(ctx, output, xd)


def prelu(ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any) -> None:
    x = _input(args, kwargs)
    xd = ctx.dims(x)
    if m.num_parameters > 1 and xd[1] is not None:
        ctx.position(path, "weight", 0, xd[1])
        ctx.bind(path, "num_parameters", xd[1])
    _set_output(ctx, output, xd)


def embedding(ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any) -> None:
    out_labels = ctx.fresh(path, "weight", 1, m.embedding_dim)
    ctx.bind(path, "embedding_dim", out_labels)
    for tensor in _tensors(output):
        ctx.set(tensor, (None,) * (tensor.dim() - 1) + (out_labels,))


def _heads(ctx: TraceContext, labels: Labels, num_heads: int) -> Labels:
    """Join each head's channels into one unit; return one label per head."""
    for block in np.split(labels, num_heads):
        ctx.uf.union_all(block)
    return labels[:: len(labels) // num_heads]


def multihead_attention(
    ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any
) -> None:
    """nn.MultiheadAttention: q/k/v widths equal the input width, so the embedding channels
    are pruned in whole heads, in every layer that shares them."""
    inputs = [*args[:3], *(kwargs.get(k) for k in ("query", "key", "value") if k in kwargs)]
    found = [ctx.dims(t)[-1] for t in inputs if isinstance(t, torch.Tensor)]
    labels = [lab for lab in found if lab is not None]
    if not m._qkv_same_embed_dim or not labels or len(labels) < len(found):
        for lab in labels:
            ctx.block(lab, f"attention {ctx.where} with separate k/v widths or fixed inputs")
        _set_output(ctx, output, (None,) * 3)
        return
    embed = labels[0]
    for other in labels[1:]:
        ctx.uf.union_arrays(embed, other)
    heads = _heads(ctx, embed, m.num_heads)
    ctx.position(path, "in_proj_weight", 1, embed)
    ctx.position(path, "in_proj_weight", 0, np.concatenate([embed] * 3))
    if m.in_proj_bias is not None:
        ctx.position(path, "in_proj_bias", 0, np.concatenate([embed] * 3))
    for name in ("bias_k", "bias_v"):
        if getattr(m, name, None) is not None:
            ctx.position(path, name, 2, embed)
    ctx.position(f"{path}.out_proj", "weight", 1, embed)
    out_labels = ctx.fresh(f"{path}.out_proj", "weight", 0, m.out_proj.out_features)
    if m.out_proj.bias is not None:
        ctx.position(f"{path}.out_proj", "bias", 0, out_labels)
    for attr in ("embed_dim", "kdim", "vdim"):
        ctx.bind(path, attr, embed)
    ctx.bind(path, "num_heads", heads)
    ctx.bind(f"{path}.out_proj", "in_features", embed)
    ctx.bind(f"{path}.out_proj", "out_features", out_labels)
    outs = _tensors(output)
    if outs:
        ctx.set(outs[0], (None,) * (outs[0].dim() - 1) + (out_labels,))
        for weights in outs[1:]:
            ctx.set(weights, (None,) * weights.dim())


def swin_attention(
    ctx: TraceContext, path: str, m: Any, args: Any, kwargs: Any, output: Any
) -> None:
    """torchvision Swin (v1/v2) window attention: q/k/v and the projection all have the
    input width C (the code reshapes with ``C // num_heads``), so C is pruned in whole heads."""
    x = _input(args, kwargs, "x")
    xd = ctx.dims(x)
    embed = xd[-1]
    if embed is None:
        _set_output(ctx, output, xd)
        return
    heads = _heads(ctx, embed, m.num_heads)
    ctx.position(f"{path}.qkv", "weight", 1, embed)
    ctx.position(f"{path}.qkv", "weight", 0, np.concatenate([embed] * 3))
    if m.qkv.bias is not None:
        ctx.position(f"{path}.qkv", "bias", 0, np.concatenate([embed] * 3))
    ctx.position(f"{path}.proj", "weight", 1, embed)
    ctx.position(f"{path}.proj", "weight", 0, embed)
    if m.proj.bias is not None:
        ctx.position(f"{path}.proj", "bias", 0, embed)
    ctx.mark_source(f"{path}.proj", embed)
    for sub, attrs in (("qkv", ("in_features",)), ("proj", ("in_features", "out_features"))):
        for attr in attrs:
            ctx.bind(f"{path}.{sub}", attr, embed)
    ctx.bind(f"{path}.qkv", "out_features", np.concatenate([embed] * 3))
    ctx.bind(path, "num_heads", heads)
    if hasattr(m, "relative_position_bias_table"):
        ctx.position(path, "relative_position_bias_table", 1, heads)
    if hasattr(m, "logit_scale"):
        ctx.position(path, "logit_scale", 0, heads)
        last = m.cpb_mlp[-1]
        last_path = f"{path}.cpb_mlp.{len(m.cpb_mlp) - 1}"
        ctx.position(last_path, "weight", 0, heads)
        if last.bias is not None:
            ctx.position(last_path, "bias", 0, heads)
        ctx.bind(last_path, "out_features", heads)
    _set_output(ctx, output, xd)


def _register_defaults() -> None:
    for conv_type in (
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.ConvTranspose1d,
        nn.ConvTranspose2d,
        nn.ConvTranspose3d,
    ):
        register_module_handler(conv_type, conv)
    register_module_handler(nn.Linear, linear)
    for bn in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm):
        register_module_handler(bn, batch_norm)
    for inorm in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
        register_module_handler(inorm, batch_norm)
    register_module_handler(nn.LayerNorm, layer_norm)
    if hasattr(nn, "RMSNorm"):
        register_module_handler(nn.RMSNorm, layer_norm)
    register_module_handler(nn.GroupNorm, group_norm)
    register_module_handler(nn.PReLU, prelu)
    register_module_handler(nn.Embedding, embedding)
    register_module_handler(nn.MultiheadAttention, multihead_attention)
    try:
        from torchvision.models.swin_transformer import (
            ShiftedWindowAttention,
            ShiftedWindowAttentionV2,
        )
    except ImportError:  # torchvision is a dependency, but keep the graph usable without it
        return
    register_module_handler(ShiftedWindowAttention, swin_attention)
    register_module_handler(ShiftedWindowAttentionV2, swin_attention)


_register_defaults()
