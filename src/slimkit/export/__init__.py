"""Saving and loading: safetensors artifacts with a JSON spec; never pickle."""

from ._artifact import load, load_state, load_weights, read_spec, save
from ._sections import SECTIONS, SpecSection, register_spec_section
from ._sparse import decode_sparse, encode_sparse
from ._spec import check_graph

__all__ = [
    "SECTIONS",
    "SpecSection",
    "check_graph",
    "decode_sparse",
    "encode_sparse",
    "load",
    "load_state",
    "load_weights",
    "read_spec",
    "register_spec_section",
    "save",
]
