"""Depth vs width on int8 ONNX Runtime: the same MACs cut by removing residual blocks or channels.

For one trained model with residual blocks (resnet56 by default), in one process:

- the removable blocks (``slimkit.graph.removable_blocks``) are ranked by the validation drop
  when each is replaced alone by the identity (``--images`` validation images);
- for each ``--blocks K``: the K least sensitive blocks removed (depth), and the same fraction
  of MACs reached by channel pruning instead (``StructuredConfig(target_macs=...)``, L2, the
  same ratio in every group, widths in multiples of ``--round-to``);
- every variant quantized to int8 (static, percentile, calibrated) and run by ONNX Runtime,
  timed interleaved with the fp32 eager original (medians at a fixed thread count).

No variant is fine-tuned: this measures what each kind of cut buys in speed on this CPU, not
accuracy (``slimkit compress`` recovers and verifies its plans; see docs/compress.md). The
drops printed are before recovery.

    python benchmarks/depth.py --artifact runs/bench-structured/resnet56/baseline.safetensors
"""

from __future__ import annotations

import argparse
import copy
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import slimkit
from slimkit.data._splits import take
from slimkit.graph import removable_blocks, remove_blocks
from slimkit.measure import count_macs, evaluate_accuracy
from slimkit.quantize import Int8StaticConfig, OrtModule, onnx_path, quantize

sys.path.insert(0, str(Path(__file__).parent))
from quantize import _interleaved


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--artifact", default="runs/bench-structured/resnet56/baseline.safetensors")
    p.add_argument("--blocks", default="6,12", help="comma-separated numbers of blocks removed")
    p.add_argument("--images", type=int, default=2000, help="validation images per block probe")
    p.add_argument("--round-to", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", default="docs/benchmarks/depth.md")
    return p.parse_args(argv)


def rank_blocks(model: torch.nn.Module, splits: Any, images: int) -> list[tuple[str, float]]:
    """(block, validation drop when it alone is removed), least sensitive first."""
    subset = take(splits.val, images)
    base = evaluate_accuracy(model, subset)
    drops = []
    for name in removable_blocks(model, splits.example_input(1)):
        pruned = copy.deepcopy(model)
        remove_blocks(pruned, [name])
        drops.append((name, base - evaluate_accuracy(pruned, subset)))
    return sorted(drops, key=lambda item: item[1])


def int8_session(model: torch.nn.Module, splits: Any, path: Path, threads: int) -> OrtModule:
    q = quantize(model, Int8StaticConfig(observer="percentile"), calib_data=splits, progress=False)
    return OrtModule(onnx_path(slimkit.save(q, path)), threads=threads)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = slimkit.load(args.artifact).eval()
    splits = slimkit.load_data("fashion-mnist", limit_train=2000)
    x1, x64 = splits.example_input(1), splits.example_input(64)
    base_macs = count_macs(model, x1)
    work = Path(tempfile.mkdtemp(prefix="slimkit-depth-"))
    ranked = rank_blocks(model, splits, args.images)
    print("block drops (no fine-tuning):", {k: round(v, 2) for k, v in ranked}, flush=True)

    rows: list[dict[str, Any]] = [{"name": "fp32 eager (original)", "model": model, "macs": 1.0}]
    rows.append(
        {
            "name": "int8, unpruned",
            "model": int8_session(model, splits, work / "int8.safetensors", args.threads),
            "macs": 1.0,
        }
    )
    for k in [int(v) for v in args.blocks.split(",") if v]:
        names = [name for name, _ in ranked[:k]]
        deep = copy.deepcopy(model)
        remove_blocks(deep, names)
        fraction = count_macs(deep, x1) / base_macs
        cfg = slimkit.StructuredConfig(target_macs=fraction, round_to=args.round_to)
        narrow = slimkit.prune(model, cfg, example_inputs=x1, progress=False)
        for label, variant in ((f"int8, {k} blocks removed", deep), ("int8, channels", narrow)):
            print(f"quantizing: {label}", flush=True)
            rows.append(
                {
                    "name": f"{label} (same MACs as {k} blocks)" if variant is narrow else label,
                    "model": int8_session(
                        variant, splits, work / f"{len(rows)}.safetensors", args.threads
                    ),
                    "macs": count_macs(variant, x1) / base_macs,
                }
            )
    with torch.no_grad():
        runners = {r["name"]: (lambda m=r["model"]: m(x64)) for r in rows}
        for name, ms in _interleaved(runners, args.rounds).items():
            next(r for r in rows if r["name"] == name)["b64"] = ms
    text = render(rows, ranked, args)
    out = Path(args.out)
    notes = NOTES.search(out.read_text()) if out.exists() else None
    out.write_text(text + (notes.group(0) if notes else ""))  # hand-written notes are kept
    print(text)
    return 0


NOTES = re.compile(r"<!-- notes -->\n.*?<!-- end notes -->\n?", re.S)


def render(rows: list[dict[str, Any]], ranked: list[tuple[str, float]], args: Any) -> str:
    eager, int8 = rows[0]["b64"], rows[1]["b64"]
    command = "python benchmarks/depth.py " + " ".join(sys.argv[1:])
    lines = [
        "# Depth vs width on int8 ONNX Runtime",
        "",
        f"`{args.artifact}`; batch 64, {args.threads} thread(s), medians of {args.rounds} "
        f"interleaved rounds; {platform.machine()}, torch {torch.__version__}. No variant is "
        "fine-tuned: this is speed per MAC cut, not accuracy.",
        "",
        f"```\n{command.strip()}\n```",
        "",
        "| variant | MACs kept | b64 ms | vs fp32 eager | vs int8 unpruned |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['macs']:.0%} | {r['b64']:.2f} | {eager / r['b64']:.2f}× | "
            f"{int8 / r['b64']:.2f}× |"
        )
    lines += [
        "",
        "Blocks by validation drop when removed alone (points, no fine-tuning, "
        f"{args.images} images): "
        + ", ".join(f"{name} {drop:+.2f}" for name, drop in ranked)
        + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
