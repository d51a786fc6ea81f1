"""Quantization: int8 static / dynamic / QAT, int8 and int4 weight-only, fp16 and bf16.

One verb, :func:`quantize`, over a config value; ONNX Runtime (QDQ graphs reaching real int8
kernels) is the default deployment backend, PyTorch's own int8 kernels (PT2E through torchao,
:class:`TorchInt8Module`) the other. :func:`sensitivity` ranks layers for mixed precision.
"""

from .._attrs import QUANT_ATTR
from ._api import (
    quantization_report,
    quantization_spec,
    quantize,
    register_quantize_handler,
    restore_structure,
)
from ._config import (
    Bf16Config,
    Fp16Config,
    Int4WeightOnlyConfig,
    Int8DynamicConfig,
    Int8StaticConfig,
    Int8WeightOnlyConfig,
    QATConfig,
    config_from_dict,
    config_to_dict,
)
from ._deploy import deployed_graph, example_input, onnx_path, write_deployment
from ._fold import conv_bn_pairs, fold_batchnorm
from ._graph import QuantReport
from ._modules import ActQuant, DynamicQuantLinear, Int4Linear, QuantWeight
from ._observers import MinMaxObserver, MSEObserver, Observer, PercentileObserver, make_observer
from ._onnx import (
    FLOAT_COMPUTE,
    INT8_KERNELS,
    OrtModule,
    export_fp32,
    export_onnx,
    optimized_op_types,
)
from ._qmath import sqnr
from ._scheme import SCHEMES, Scheme, register_scheme, scheme_of
from ._sensitivity import LayerSensitivity, quantizable_layers, sensitivity
from ._torch import TorchInt8Module, require_torchao, to_qdq_graph

__all__ = [
    "FLOAT_COMPUTE",
    "INT8_KERNELS",
    "QUANT_ATTR",
    "SCHEMES",
    "ActQuant",
    "Bf16Config",
    "DynamicQuantLinear",
    "Fp16Config",
    "Int4Linear",
    "Int4WeightOnlyConfig",
    "Int8DynamicConfig",
    "Int8StaticConfig",
    "Int8WeightOnlyConfig",
    "LayerSensitivity",
    "MSEObserver",
    "MinMaxObserver",
    "Observer",
    "OrtModule",
    "PercentileObserver",
    "QATConfig",
    "QuantReport",
    "QuantWeight",
    "Scheme",
    "TorchInt8Module",
    "config_from_dict",
    "config_to_dict",
    "conv_bn_pairs",
    "deployed_graph",
    "example_input",
    "export_fp32",
    "export_onnx",
    "fold_batchnorm",
    "make_observer",
    "onnx_path",
    "optimized_op_types",
    "quantizable_layers",
    "quantization_report",
    "quantization_spec",
    "quantize",
    "register_quantize_handler",
    "register_scheme",
    "require_torchao",
    "restore_structure",
    "scheme_of",
    "sensitivity",
    "sqnr",
    "to_qdq_graph",
    "write_deployment",
]
