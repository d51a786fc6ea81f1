"""Runtimes: the engines an exported graph is deployed on (ONNX Runtime, OpenVINO).

Example:
    >>> from slimkit.runtime import RUNTIMES, available_runtimes
    >>> runner = RUNTIMES.get("openvino").load("model.onnx", 2)   # an nn.Module
"""

from . import _onnxruntime, _openvino  # noqa: F401  (registration)
from ._base import RUNTIMES, Runtime, available_runtimes, register_runtime
from ._deployed import profile_deployed
from ._openvino import OpenVinoModule
from ._profile import layer_times

__all__ = [
    "RUNTIMES",
    "OpenVinoModule",
    "Runtime",
    "available_runtimes",
    "layer_times",
    "profile_deployed",
    "register_runtime",
]
