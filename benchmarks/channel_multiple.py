"""Why compress rounds channel counts to multiples of 8 for the latency goal.

Prunes a trained model by uniform ratios with and without ``round_to=8``, exports each to an
fp32 ONNX graph (batch norm folded), and times them with the dense graph, interleaved in one
process (median of 15 rounds, repeated), with ONNX Runtime at a fixed thread count:

    python benchmarks/channel_multiple.py --artifact references/seed-cnn.safetensors --threads 2
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch

import slimkit
from slimkit.measure import count_macs, interleaved_latency
from slimkit.quantize import OrtModule, export_onnx, fold_batchnorm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", default="references/seed-cnn.safetensors")
    parser.add_argument("--ratios", default="0.2,0.45")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = slimkit.load_data("fashion-mnist")
    model = slimkit.load(args.artifact).eval()
    x1, x64 = splits.example_input(1), splits.example_input(64)
    work = Path(tempfile.mkdtemp(prefix="slimkit-round-"))

    def ort(m: torch.nn.Module, name: str) -> OrtModule:
        folded = copy.deepcopy(m).eval()
        fold_batchnorm(folded)
        return OrtModule(export_onnx(folded, work / f"{name}.onnx", x1), threads=args.threads)

    variants = {"dense": (model, ort(model, "dense"))}
    for ratio in (float(r) for r in args.ratios.split(",")):
        for multiple in (1, 8):
            cfg = slimkit.StructuredConfig(ratio=ratio, round_to=multiple)
            pruned = slimkit.prune(model, cfg, example_inputs=x1, progress=False)
            name = f"ratio {ratio}, round_to {multiple}"
            variants[name] = (pruned, ort(pruned, f"{ratio}-{multiple}"))
    runs = [
        interleaved_latency([s for _, s in variants.values()], x64) for _ in range(args.repeats)
    ]
    base_macs = count_macs(model, x1)
    print(f"ONNX Runtime fp32, batch 64, {args.threads} thread(s); ms per run of 15 rounds")
    print("| variant | conv/linear widths | MACs kept | b64 ms (each repeat) |")
    print("|---|---|---:|---|")
    for index, (name, (m, _)) in enumerate(variants.items()):
        widths = [
            getattr(layer, "out_channels", getattr(layer, "out_features", None))
            for layer in m.modules()
            if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear)
        ][:-1]
        times = ", ".join(f"{run[index]:.2f}" for run in runs)
        print(f"| {name} | {widths} | {count_macs(m, x1) / base_macs:.0%} | {times} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
