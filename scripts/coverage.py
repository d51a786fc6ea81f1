"""Structured-pruning coverage of the torchvision zoo → docs/coverage.md.

Every classification model of ``torchvision.models.list_models(module=torchvision.models)`` is
built with random weights at its smallest sensible input (batch 1), pruned at ratio 0.5 with
the default config, and checked: it runs, its output shape is unchanged, its MACs went down.
Each model runs in a child process so one model's memory or crash cannot affect the others.

Usage:
    .venv/bin/python scripts/coverage.py [--out docs/coverage.md] [--only resnet18 vit_b_16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from slimkit.testing import check_structured, torchvision_case
model, example = torchvision_case(sys.argv[1])
print(json.dumps(check_structured(model, example, ratio=0.5)))
"""


def run_one(name: str, timeout: float) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, name], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "reason": f"crashed (exit {proc.returncode}): {last[:200]}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = round(time.perf_counter() - start, 1)
    return result


def _macs(value: int | None) -> str:
    return f"{value / 1e6:,.1f} M" if value else "–"


def render(results: dict[str, dict]) -> str:
    ok = sum(r["ok"] for r in results.values())
    lines = [
        "# Structured pruning coverage of torchvision classifiers",
        "",
        "Written by `scripts/coverage.py`. Each model: random weights, batch 1 at its smallest",
        "sensible input (32×32; ViTs two patches; inception_v3 75; alexnet 63; maxvit_t 224),",
        "`StructuredConfig(ratio=0.5)` with L2 group importance. *ok* = the pruned model runs,",
        "its output shape is unchanged, its MACs are lower, and every traced op's shape matched",
        "the plan. *Left* counts groups kept whole (in part or fully) and the ops that blocked them.",
        "",
        f"**{ok} / {len(results)} models ok ({ok / len(results):.1%}).**",
        "",
        "| model | MACs before | MACs after | after / before | left | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        ratio = f"{r['macs_after'] / r['macs_before']:.2f}" if r.get("macs_after") else "–"
        verdict = "ok" if r["ok"] else f"fails: {r['reason']}"
        unsupported = r.get("unsupported_ops") or {}
        if unsupported:
            verdict += " (unsupported ops kept whole: " + ", ".join(sorted(unsupported)) + ")"
        lines.append(
            f"| {name} | {_macs(r.get('macs_before'))} | {_macs(r.get('macs_after'))} | {ratio} "
            f"| {r.get('left_unpruned', '–')} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    import torchvision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/coverage.md")
    parser.add_argument("--only", nargs="*", default=None, help="a subset of model names")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model")
    args = parser.parse_args()
    names = args.only or torchvision.models.list_models(module=torchvision.models)
    results = {}
    for name in names:
        results[name] = run_one(name, args.timeout)
        r = results[name]
        print(f"{name}: {'ok' if r['ok'] else r['reason']} ({r.get('wall', '?')} s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(render(results))
    print(f"wrote {args.out}: {sum(r['ok'] for r in results.values())}/{len(results)} ok")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
