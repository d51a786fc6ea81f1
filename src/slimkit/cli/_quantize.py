"""``slimkit quantize``: build a scheme config from the flags and call :func:`slimkit.quantize`.

With ``--sensitivity`` it ranks the layers by the accuracy lost when each alone is int8 instead
(what to keep in float with ``--exclude``), and writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import export
from .._device import resolve_device
from .._io import check_writable, refuse_overwrite
from ..data import load_data
from ..measure import evaluate_accuracy
from ..quantize import (
    SCHEMES,
    Int4WeightOnlyConfig,
    Int8StaticConfig,
    OrtModule,
    QATConfig,
    TorchInt8Module,
    config_from_dict,
    onnx_path,
    quantization_report,
    quantize,
    sensitivity,
)
from ..quantize._api import ONNX_SCHEMES, TORCH_INT8_SCHEMES
from ..quantize._config import OBSERVERS, REDUCE_RANGE
from ._guards import refuse_quantized
from ._output import log, print_json
from ._parser import field_default


def quantize_parser(
    sub: argparse._SubParsersAction,
    add_common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``quantize`` subcommand to ``sub``."""
    p = sub.add_parser("quantize", help="quantize a trained artifact (int8, int4, fp16, bf16)")
    p.add_argument("artifact", metavar="ARTIFACT", help="the trained float artifact to quantize")
    p.add_argument(
        "--scheme",
        choices=SCHEMES.names(),  # read now: schemes registered by plugins are choices too
        help="one of %(choices)s; required unless --sensitivity (which defaults to int8-static)",
    )
    p.add_argument(
        "--backend",
        choices=["onnxruntime", "torch"],
        default=None,
        help="one of %(choices)s (default: onnxruntime for int8-static/qat/int8-weight-only, "
        "torch otherwise); torch runs int8-static/qat on PyTorch int8 kernels (needs "
        "slimkit[torchao])",
    )
    p.add_argument(
        "--sensitivity",
        action="store_true",
        help="rank layers by the validation accuracy lost when only that layer is int8; "
        "writes nothing",
    )
    ranking = inspect.signature(sensitivity).parameters
    p.add_argument(
        "--sensitivity-batches",
        type=int,
        default=ranking["batches"].default,
        help=f"validation batches of {ranking['batch_size'].default} images read per layer "
        "(--sensitivity; default %(default)s)",
    )
    _static_options(p)
    p.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        help="layer names or patterns kept float (default: none)",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=field_default(Int4WeightOnlyConfig, "group_size"),
        help="int4-weight-only: weights sharing one scale (default %(default)s)",
    )
    qat = field_default(QATConfig, "train")
    p.add_argument(
        "--qat-epochs",
        type=int,
        default=qat.epochs,
        help="qat: fine-tuning epochs (default %(default)s)",
    )
    p.add_argument(
        "--qat-lr",
        type=float,
        default=qat.lr,
        help="qat: fine-tuning peak learning rate (default %(default)s)",
    )
    p.add_argument("--out", help="artifact to write (.safetensors); required unless --sensitivity")
    add_common(p)


def _static_options(p: argparse.ArgumentParser) -> None:
    """int8-static and qat: calibration and weight scales."""
    p.add_argument(
        "--observer",
        default=field_default(Int8StaticConfig, "observer"),
        choices=OBSERVERS,
        help="int8-static/qat: how activation ranges are found, one of %(choices)s "
        "(default %(default)s)",
    )
    p.add_argument(
        "--per-tensor",
        action="store_true",
        help="int8-static/qat: one weight scale per tensor (default: one per output channel)",
    )
    p.add_argument(
        "--reduce-range",
        default=field_default(Int8StaticConfig, "reduce_range"),
        choices=REDUCE_RANGE,
        help="int8-static/qat: 7-bit weights in all layers, none, or (auto) the layers whose "
        "inputs could saturate x86 AVX2 int8 kernels; one of %(choices)s (default %(default)s)",
    )
    p.add_argument(
        "--calib-batches",
        type=int,
        default=field_default(Int8StaticConfig, "calib_batches"),
        help=f"int8-static/qat: calibration batches of "
        f"{field_default(Int8StaticConfig, 'calib_batch_size')} images (default %(default)s)",
    )


def _config(args: argparse.Namespace, scheme: str) -> Any:
    """The scheme's config from the flags its config type has fields for (a plugin's
    scheme with an ``exclude`` field gets ``--exclude``); other fields keep their defaults."""
    flags = {
        "observer": args.observer,
        "per_channel": not args.per_tensor,
        "exclude": list(args.exclude),
        "calib_batches": args.calib_batches,
        "reduce_range": args.reduce_range,
        "group_size": args.group_size,
        "train": {"epochs": args.qat_epochs, "lr": args.qat_lr},
    }
    fields = {f.name for f in dataclasses.fields(SCHEMES.get(scheme).config_type)}
    return config_from_dict({"scheme": scheme, **{k: v for k, v in flags.items() if k in fields}})


def _splits(args: argparse.Namespace) -> Any:
    return load_data(
        args.data,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        limit_eval=args.limit_eval,
        image_size=args.image_size,
    )


def cmd_quantize(args: argparse.Namespace) -> int:
    """Quantize ARTIFACT, save it (and its .onnx for ONNX Runtime) and report accuracy."""
    if args.sensitivity:
        return _cmd_sensitivity(args)
    if args.scheme is None or args.out is None:
        raise ValueError("quantize needs --scheme and --out (or --sensitivity)")
    backend = args.backend or ("onnxruntime" if args.scheme in ONNX_SCHEMES else "torch")
    cfg = _config(args, args.scheme)
    source = Path(args.artifact)
    refuse_overwrite([source], Path(args.out), "quantized model")
    check_writable(args.out)
    refuse_quantized(source, "quantize")
    model = export.load(source)
    splits = _splits(args)
    device = resolve_device(args.device)
    quantized = quantize(
        model,
        cfg,
        calib_data=splits,
        data=splits,
        backend=backend,
        device=device,
        progress=not args.quiet,
    )
    metrics: dict[str, Any] = {
        "baseline_test_accuracy": evaluate_accuracy(model, splits.test),
        "test_accuracy": evaluate_accuracy(quantized, splits.test),
    }
    provenance = {
        "command": "quantize",
        "parent": str(source),
        "parent_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        # The config and backend are the artifact's quantization section; not repeated here.
        "data": splits.describe(),
    }
    out = export.save(quantized, args.out, provenance=provenance, metrics=metrics)
    result = _result(out, source, backend, splits, metrics, quantization_report(quantized))
    if backend == "torch" and args.scheme in TORCH_INT8_SCHEMES:
        # The deployed form: compiled to PyTorch's int8 kernels (one compilation per batch size).
        log(args, "compiling the int8 model with torch.compile ...")
        runner = TorchInt8Module(quantized)
        result["torch_int8_test_accuracy"] = evaluate_accuracy(runner, splits.test)
    if args.json:
        print_json(result)
    else:
        _print_human(result)
    return 0


def _result(
    out: Path,
    source: Path,
    backend: str,
    splits: Any,
    metrics: dict[str, Any],
    report: dict[str, Any],
) -> dict[str, Any]:
    result: dict[str, Any] = {"out": str(out), "backend": backend, **metrics}
    result["bytes"] = out.stat().st_size
    result["size_ratio"] = source.stat().st_size / result["bytes"]
    deployed = onnx_path(out)
    if backend == "onnxruntime" and deployed.is_file():
        result["onnx"] = str(deployed)
        result["onnx_test_accuracy"] = evaluate_accuracy(OrtModule(deployed), splits.test)
    result["float_ops"] = report.get("float_ops", [])
    return result


def _print_human(result: dict[str, Any]) -> None:
    line = (
        f"saved {result['out']} ({result['size_ratio']:.2f}x smaller): test top-1 "
        f"{result['test_accuracy']:.2f}% (baseline {result['baseline_test_accuracy']:.2f}%)"
    )
    if "onnx" in result:
        line += f"; {result['onnx']}: onnxruntime top-1 {result['onnx_test_accuracy']:.2f}%"
    if "torch_int8_test_accuracy" in result:
        line += f"; torch int8 kernels top-1 {result['torch_int8_test_accuracy']:.2f}%"
    print(line)
    for entry in result["float_ops"]:
        print(f"  left in float: {entry['op']}: {entry['reason']}", file=sys.stderr)


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    """Print the layers of ARTIFACT ranked by their int8 sensitivity (worst first)."""
    scheme = args.scheme or "int8-static"
    if scheme not in ("int8-static", "qat"):
        raise ValueError(
            f"--sensitivity ranks int8-static layers; --scheme {scheme} has no ranking"
        )
    cfg = _config(args, scheme)
    refuse_quantized(args.artifact, "quantize --sensitivity")
    model = export.load(args.artifact)
    splits = _splits(args)

    def progress(i: int, total: int, layer: str) -> None:
        if not args.json:
            log(args, f"[{i + 1}/{total}] {layer}")

    ranked = sensitivity(model, cfg, splits, batches=args.sensitivity_batches, on_layer=progress)
    images = min(len(splits.val), args.sensitivity_batches * 256)
    if args.json:
        print_json({"images": images, "layers": [r.to_dict() for r in ranked]})
        return 0
    print(_sensitivity_table(ranked, images))
    return 0


def _sensitivity_table(ranked: list[Any], images: int) -> str:
    width = max([len("layer"), *(len(r.layer) for r in ranked)])
    lines = [
        f"int8 sensitivity: validation top-1 lost when only that layer is int8 ({images} images)",
        f"{'rank':>4}  {'layer':<{width}}  drop (points)",
        f"{'-' * 4}  {'-' * width}  {'-' * 13}",
    ]
    lines += [
        f"{i:>4}  {r.layer:<{width}}  {r.accuracy_drop:>13.2f}" for i, r in enumerate(ranked, 1)
    ]
    return "\n".join(lines)
