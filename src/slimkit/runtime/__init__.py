"""Runtimes: the engines an exported graph is deployed on (ONNX Runtime, OpenVINO).

Example:
    >>> from slimkit.runtime import RUNTIMES, available_runtimes
    >>> runner = RUNTIMES.get("openvino").load("model.onnx", 2)   # an nn.Module
"""

from . import _onnxruntime, _openvino  # noqa: F401  (registration)
from ._base import (
    DEFAULT_CHANNEL_MULTIPLE,
    RUNTIMES,
    ChannelMultiples,
    Runtime,
    available_runtimes,
    channel_multiple,
    register_runtime,
)
from ._deployed import profile_deployed
from ._openvino import OpenVinoModule
from ._profile import layer_times

__all__ = [
    "DEFAULT_CHANNEL_MULTIPLE",
    "RUNTIMES",
    "ChannelMultiples",
    "OpenVinoModule",
    "Runtime",
    "available_runtimes",
    "channel_multiple",
    "layer_times",
    "profile_deployed",
    "register_runtime",
]
