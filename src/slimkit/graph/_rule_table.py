"""Every op rule by the torch names it handles, registered with :func:`register_op_rule`."""

from __future__ import annotations

from ._layout_rules import (
    cat,
    expand,
    flip,
    getitem,
    pad,
    permute,
    repeat,
    reshape,
    select_like,
    split,
    stack,
)
from ._rules import (
    _POINTWISE,
    along_dim,
    attention,
    batch_norm,
    constant,
    conv,
    einsum,
    embedding,
    first_operand,
    layer_norm,
    linear,
    matmul,
    pointwise,
    reduction,
    spatial,
)
from ._trace import register_op_rule

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
