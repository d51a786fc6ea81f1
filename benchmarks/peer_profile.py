"""Where a compressed int8 graph spends its time, next to ONNX Runtime ``quantize_static`` of the
original, kernel by kernel (ONNX Runtime's profiler, both graphs run interleaved).

The peer is built as ``benchmarks/versus.py`` builds it: the original's BatchNorm-folded fp32
graph (``slimkit.quantize.export_fp32``) quantized by ``onnxruntime.quantization.quantize_static``
(QDQ, per-channel, MinMax) on 8 training batches of 64. Both graphs run in slimkit's ONNX Runtime
session (default optimisations) with the profiler on, one run of each in turn; every kernel's time
is its median over the runs (the first, with weight packing, left out). Kernels are attributed to
the module they came from (``slimkit.quantize._ort_profile``) and summed per stage (the module
path's first part); the rest (residual adds, layout transposes, quantize nodes) per op type.
Profiled times include the profiler's overhead: compare the two columns, not other benchmarks.

    .venv/bin/python benchmarks/peer_profile.py --original references/resnet20.safetensors \\
        --onnx runs/r20b/model.onnx
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import slimkit
from slimkit.quantize import export_fp32
from slimkit.quantize._calib import calibration_batches
from slimkit.quantize._onnx import session
from slimkit.quantize._ort_profile import layer_nodes, source_node

sys.path.insert(0, str(Path(__file__).parent))
from ort_profile import conv_macs
from quantize import _peer_ort


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--original", default="references/resnet20.safetensors")
    p.add_argument("--onnx", default="runs/r20b/model.onnx", help="the compressed int8 graph")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=40)
    return p.parse_args(argv)


def interleaved_kernels(
    paths: dict[str, Path], batch: int, threads: int, runs: int, work: Path
) -> dict[str, dict[str, tuple[str, float]]]:
    """Per graph: kernel name -> (op, median ms), the graphs' runs interleaved."""
    sessions = {
        k: session(p, threads, profile_prefix=str(work / f"{k}-{batch}")) for k, p in paths.items()
    }
    x = np.random.default_rng(0).random((batch, 1, 28, 28)).astype(np.float32)
    for _ in range(runs + 1):
        for s in sessions.values():
            s.run(None, {s.get_inputs()[0].name: x})
    out = {}
    for key, s in sessions.items():
        durations: dict[str, list[float]] = collections.defaultdict(list)
        ops = {}
        for event in json.loads(Path(s.end_profiling()).read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                name = event["name"].removesuffix("_kernel_time")
                durations[name].append(event["dur"] / 1000.0)
                ops[name] = event["args"]["op_name"]
        out[key] = {n: (ops[n], statistics.median(d[1:])) for n, d in durations.items()}
    return out


def grouped(
    kernels: dict[str, tuple[str, float]], nodes: dict[str, str], macs: dict[str, int]
) -> dict[str, list[float]]:
    """Group -> [ms, MACs]: weighted kernels by stage, the others by op type."""
    groups: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for name, (op, ms) in kernels.items():
        source = source_node(name, nodes)
        key = op if source is None else nodes[source].split(".")[0]
        groups[key][0] += ms
        if source in macs:
            groups[key][1] += macs[source][1]
    return groups


def table(results: dict[str, dict[str, list[float]]], batch: int) -> list[str]:
    ours, peer = results["slimkit"], results["peer"]
    lines = [
        f"| batch {batch} | slimkit ms | peer ms | slimkit / peer ms | slimkit / peer MACs "
        "| slimkit G MAC/s | peer G MAC/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted(set(ours) | set(peer), key=lambda k: -peer.get(k, ours.get(k, [0.0]))[0])
    for key in [*keys, "total"]:
        if key == "total":
            a = [sum(v[i] for v in ours.values()) for i in (0, 1)]
            b = [sum(v[i] for v in peer.values()) for i in (0, 1)]
        else:
            a, b = ours.get(key, [0.0, 0.0]), peer.get(key, [0.0, 0.0])
        rate = [f"{m / ms / 1e6:.0f}" if m and ms else "" for ms, m in (a, b)]
        mac_ratio = f"{a[1] / b[1]:.2f}" if b[1] else ""
        time_ratio = f"{a[0] / b[0]:.2f}" if b[0] else ""
        lines.append(
            f"| {key} | {a[0]:.3f} | {b[0]:.3f} | {time_ratio} | {mac_ratio} | "
            f"{rate[0]} | {rate[1]} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="slimkit-peer-profile-"))
    splits = slimkit.load_data("fashion-mnist")
    original = slimkit.load(args.original).eval()
    fp32 = export_fp32(original, work / "original.onnx", splits.example_input(1))
    calib = calibration_batches(splits, original, batches=8, batch_size=64)
    paths = {"slimkit": Path(args.onnx), "peer": _peer_ort(fp32, work / "peer.onnx", calib)}
    nodes = {"slimkit": layer_nodes(paths["slimkit"]), "peer": layer_nodes(fp32)}
    for batch in (int(b) for b in args.batches.split(",")):
        kernels = interleaved_kernels(paths, batch, args.threads, args.runs, work)
        results: dict[str, Any] = {
            k: grouped(kernels[k], nodes[k], conv_macs(paths[k], batch)) for k in paths
        }
        print("\n".join(table(results, batch)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
