"""How well the latency cost predicts: each trial's predicted latency fraction against its graph.

For a ``slimkit compress`` run planned with ``--structure-cost latency``, reads the trials of
its current study (``trials.json``) and times, interleaved in one process (medians at a fixed
thread count, batch 64) on the runtime the plan priced cuts on, the original's int8 graph that
the plan profiled (``probe/``) and every trial's int8 ONNX graph. Prints, per trial, the predicted fraction of the original's
int8 latency (``structured.latency_fraction``), the measured one, and the MACs fraction.

    python benchmarks/latency_model.py runs/bench-compress/resnet56-latency
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import slimkit
from slimkit.measure import interleaved_latency
from slimkit.runtime import RUNTIMES
from slimkit.search._compress import _probe_tag


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    state = json.loads((args.run_dir / "state.json").read_text())
    plan = state["stages"]["plan"]["output"]
    if "layer_ms" not in plan:
        sys.exit(f"{args.run_dir} was not planned with --structure-cost latency")
    tag = _probe_tag(plan.get("int8_keep_float", []))
    records = json.loads((args.run_dir / "trials.json").read_text())
    int8 = [r for r in records if r["onnx"].endswith("model.onnx")]  # fp32 deploys left out
    x = slimkit.load_data("fashion-mnist", limit_train=1000).example_input(64)
    graphs = [str(args.run_dir / "probe" / f"{tag}.onnx"), *(r["onnx"] for r in int8)]
    runtime = plan.get("layer_ms_runtime", "onnxruntime")
    runners = [RUNTIMES.get(runtime).load(path, args.threads) for path in graphs]
    original, *times = interleaved_latency(runners, x, args.rounds)
    table = "a latency table" if "latency_table" in plan else "per-layer times scaled by MACs"
    print(
        f"original int8 graph on {runtime}: {original:.2f} ms (batch 64, "
        f"{args.threads} thread(s)); predicted from {table}"
    )
    print("| trial | latency_keep | predicted | measured | MACs kept | ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for record, ms in zip(int8, times, strict=True):
        s = record["structured"]
        print(
            f"| {record['number']} | {record['params'].get('latency_keep', float('nan')):.3f} "
            f"| {s.get('latency_fraction', float('nan')):.3f} | {ms / original:.3f} "
            f"| {s['macs_fraction']:.3f} | {ms:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
