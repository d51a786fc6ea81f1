"""Saving and loading: safetensors artifacts with a JSON spec; never pickle."""

from ._artifact import load, load_state, load_weights, read_spec, save
from ._sparse import decode_sparse, encode_sparse
from ._spec import check_graph

__all__ = [
    "check_graph",
    "decode_sparse",
    "encode_sparse",
    "load",
    "load_state",
    "load_weights",
    "read_spec",
    "save",
]
