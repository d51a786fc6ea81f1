"""Quantization benchmark: slimkit schemes vs fp32 and ONNX Runtime's own quantize_static.

Writes docs/benchmarks/quantize.md. In one process, latencies are interleaved (every variant
timed once per round, rounds repeated) and the median is reported, at a fixed thread count.

Usage:
    .venv/bin/python benchmarks/quantize.py --artifact runs/demo/seed-cnn.safetensors \
        --threads 1 --rounds 15 --qat-epochs 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import slimkit
from slimkit.quantize import (
    Int8StaticConfig,
    Int8WeightOnlyConfig,
    OrtModule,
    QATConfig,
    export_onnx,
    fold_batchnorm,
    onnx_path,
    optimized_op_types,
    quantize,
)
from slimkit.quantize._calib import calibration_batches


def _peer(float_onnx: Path, out: Path, calib: list[torch.Tensor]) -> Path:
    """onnxruntime.quantization.quantize_static: QDQ, per-channel, MinMax, u8 activations."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": x.numpy()} for x in calib])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    quantize_static(
        str(float_onnx),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return out


def _interleaved(runners: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    for fn in runners.values():  # warm-up
        fn(), fn()
    for _ in range(rounds):
        for name, fn in runners.items():
            start = time.perf_counter()
            for _ in range(5):
                fn()
            times[name].append((time.perf_counter() - start) * 200.0)  # ms per call
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", default="runs/demo/seed-cnn.safetensors")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--out", default="docs/benchmarks/quantize.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = slimkit.load_data("fashion-mnist")
    model = slimkit.load(args.artifact)
    work = Path(tempfile.mkdtemp(prefix="slimkit-qbench-"))
    # The peer calibrates on the same batches slimkit's calibration reads.
    calib = calibration_batches(splits, model, batches=8, batch_size=64)

    variants: dict[str, dict[str, Any]] = {}
    fp32_path = slimkit.save(model, work / "fp32.safetensors")
    folded = slimkit.load(fp32_path)
    fold_batchnorm(folded)
    float_onnx = export_onnx(folded, work / "fp32.onnx", splits.example_input(1))
    variants["fp32 eager (torch)"] = {"model": model, "bytes": fp32_path.stat().st_size}
    variants["fp32 onnxruntime"] = {"model": OrtModule(float_onnx, args.threads)}
    variants["fp32 onnxruntime"]["bytes"] = float_onnx.stat().st_size
    schemes = {
        "slimkit int8-static minmax (ort)": Int8StaticConfig(),
        "slimkit int8-static percentile (ort)": Int8StaticConfig(observer="percentile"),
        "slimkit int8-static mse (ort)": Int8StaticConfig(observer="mse"),
        "slimkit qat (ort)": QATConfig(
            observer="percentile",
            finetune=slimkit.TrainConfig(epochs=args.qat_epochs, lr=1e-4),
        ),
        "slimkit int8-weight-only (ort)": Int8WeightOnlyConfig(),
    }
    for i, (name, cfg) in enumerate(schemes.items()):
        print(f"quantizing: {name}", file=sys.stderr, flush=True)
        q = quantize(model, cfg, calib_data=splits, data=splits, progress=False)
        path = slimkit.save(q, work / f"q{i}.safetensors")
        variants[name.replace("(ort)", "(torch sim)")] = {"model": q}
        variants[name] = {
            "model": OrtModule(onnx_path(path), args.threads),
            "bytes": path.stat().st_size,
            "onnx": onnx_path(path),
        }
    peer = _peer(float_onnx, work / "peer.onnx", calib)
    variants["ort quantize_static (peer)"] = {
        "model": OrtModule(peer, args.threads),
        "bytes": peer.stat().st_size,
        "onnx": peer,
    }
    rows = _measure(variants, splits, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(_markdown(rows, args, model))
    print(Path(args.out).read_text())
    return 0


def _measure(variants: dict[str, dict[str, Any]], splits: Any, args: Any) -> list[dict[str, Any]]:
    x64, x1 = splits.example_input(64), splits.example_input(1)
    rows = []
    for name, v in variants.items():
        print(f"accuracy: {name}", file=sys.stderr, flush=True)
        row = {"name": name, "acc": slimkit.evaluate_accuracy(v["model"], splits.test)}
        row["bytes"] = v.get("bytes")
        row["kernels"] = _kernels(v.get("onnx"))
        rows.append(row)
    with torch.no_grad():
        for bs, x in (("b1", x1), ("b64", x64)):
            runners = {n: (lambda m=v["model"], x=x: m(x)) for n, v in variants.items()}
            for name, ms in _interleaved(runners, args.rounds).items():
                next(r for r in rows if r["name"] == name)[bs] = ms
    return rows


def _kernels(path: Path | None) -> str:
    if path is None:
        return ""
    ops = optimized_op_types(path)
    return ", ".join(
        f"{k}×{n}"
        for k, n in sorted(ops.items())
        if k.startswith(("QLinear", "QGemm", "Conv", "Gemm", "MatMul", "Fused"))
    )


def _markdown(rows: list[dict[str, Any]], args: Any, model: Any) -> str:
    eager = next(r for r in rows if r["name"].startswith("fp32 eager"))
    peer = next(r for r in rows if "peer" in r["name"])
    lines = [
        "# Quantization benchmark",
        "",
        f"Model: `{args.artifact}` ({model.slimkit_spec['arch']['name']}), Fashion-MNIST test set "
        f"(10,000 images). CPU, {args.threads} thread(s), latency = median of {args.rounds} "
        "interleaved rounds of 5 calls each. Calibration: 8 training batches of 64.",
        "",
        "Produced by:",
        "",
        "```",
        f".venv/bin/python benchmarks/quantize.py --artifact {args.artifact} --threads "
        f"{args.threads} --rounds {args.rounds} --qat-epochs {args.qat_epochs}",
        "```",
        "",
        "| variant | test top-1 (%) | bytes | b1 (ms) | b64 (ms) | b64 speed-up vs eager | b64 vs peer | int8 kernels after ORT optimisation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = f"{r['bytes']:,}" if r["bytes"] else "-"
        lines.append(
            f"| {r['name']} | {r['acc']:.2f} | {size} | {r['b1']:.3f} | {r['b64']:.3f} | "
            f"{eager['b64'] / r['b64']:.2f}× | {peer['b64'] / r['b64']:.2f}× | {r['kernels']} |"
        )
    lines += [
        "",
        '"torch sim" rows are slimkit\'s simulated int8 model in eager PyTorch (fake-quant, float '
        "compute): the numerics reference, not a fast path. The PT2E / torchao x86-inductor path "
        "is not benchmarked yet.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
