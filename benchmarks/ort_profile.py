"""Where an ONNX Runtime graph spends its time: per-node kernel times, and G MAC/s per conv.

Runs the graph in a slimkit session (CPU EP, ONNX Runtime's default optimisations) with
ONNX Runtime's profiler on, at a fixed batch size and thread count, and prints the time per op
type and the slowest nodes with their weight shapes and throughput. Either an ONNX file, or a
float artifact quantized here to int8 (static, minmax, calibrated on Fashion-MNIST):

    python benchmarks/ort_profile.py --onnx runs/bench-compress/resnet56-latency/model.onnx
    python benchmarks/ort_profile.py --artifact runs/bench/resnet20.safetensors
    python benchmarks/ort_profile.py --artifact references/seed-cnn.safetensors --no-stem-pad
    python benchmarks/ort_profile.py --artifact runs/bench/resnet20.safetensors --float conv1

``--no-stem-pad`` exports without padding a first conv over 1-3 channels to 4 (see
``slimkit.quantize._qdq_passes.STEM_CHANNELS``), to compare the two; ``--float`` keeps layers in
float (mixed precision). A padded conv's G MAC/s counts the padded channels. Profiled times include the
profiler's own overhead; compare nodes within a run, not against other benchmarks.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

import slimkit
from slimkit.quantize import Int8StaticConfig, _qdq_passes, onnx_path, quantize
from slimkit.quantize._ort_profile import kernel_times, source_node


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--onnx", help="an ONNX file to profile")
    source.add_argument("--artifact", help="a float artifact to quantize (int8 static) first")
    p.add_argument("--no-stem-pad", action="store_true", help="export without the stem padding")
    p.add_argument("--float", default="", help="comma-separated layers kept float (--artifact)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--top", type=int, default=12)
    return p.parse_args(argv)


def quantized_onnx(artifact: str, work: Path, pad_stem: bool, floats: tuple[str, ...]) -> Path:
    if not pad_stem:
        _qdq_passes.STEM_CHANNELS = 1  # no conv has fewer input channels: nothing is padded
    splits = slimkit.load_data("fashion-mnist", limit_train=2000)
    cfg = Int8StaticConfig(exclude=floats)
    q = quantize(slimkit.load(artifact), cfg, calib_data=splits, progress=False)
    return onnx_path(slimkit.save(q, work / "q.safetensors"))


def conv_macs(path: Path, batch: int) -> dict[str, tuple[list[int], int]]:
    """Weight shape and MACs per batch of every Conv node, by node name."""
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    inits = {i.name: list(i.dims) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    out: dict[str, tuple[list[int], int]] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1]
        if weight in producer:  # int8 weight behind a DequantizeLinear
            weight = producer[weight].input[0]
        shape, result = inits[weight], shapes.get(node.output[0])
        if result:
            out[node.name] = (shape, int(np.prod(result)) * int(np.prod(shape[1:])))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="slimkit-ortprof-") as work:
        if args.onnx:
            path = Path(args.onnx)
        else:
            floats = tuple(name for name in args.float.split(",") if name)
            path = quantized_onnx(args.artifact, Path(work), not args.no_stem_pad, floats)
        rows = kernel_times(path, args.batch, args.threads, args.runs)
        convs = conv_macs(path, args.batch)
    total = sum(r["ms"] for r in rows)
    by_op: dict[str, float] = collections.defaultdict(float)
    for r in rows:
        by_op[r["op"]] += r["ms"]
    print(f"{path}: batch {args.batch}, {args.threads} thread(s), {total:.2f} ms per run")
    for op, ms in sorted(by_op.items(), key=lambda t: -t[1]):
        print(f"  {op:28s} {ms:8.3f} ms  {100 * ms / total:5.1f}%")
    print(f"slowest {args.top} nodes:")
    for r in sorted(rows, key=lambda r: -r["ms"])[: args.top]:
        conv = source_node(r["node"], set(convs))
        detail = ""
        if conv is not None:
            shape, macs = convs[conv]
            detail = f"weight {shape}, {macs / r['ms'] / 1e6:6.1f} G MAC/s"
        print(f"  {r['ms']:7.3f} ms  {r['op']:14s} {r['node']:42s} {detail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
