"""Which channel multiples each runtime's kernels want, at resnet20's shapes, int8 and fp32.

The unit timed is a resnet stage: three basic blocks (two 3x3 convs with bias each, as batch
norm folded into them leaves them, ReLU, identity residual add), then the global average pool,
at the three stage shapes of resnet20 on Fashion-MNIST: 28x28 (16 channels), 14x14 (32) and
7x7 (64). Two ways of pruning it are swept one channel at a time:

- ``stage``: the stage's own width ``c`` (every conv ``c -> c``: pruning the residual group);
- ``inner``: the blocks' inner width ``c`` at the stage's original width ``W`` (``W -> c -> W``:
  pruning each block's first conv).

Each variant is built the way ``slimkit compress`` deploys: :func:`slimkit.quantize` (int8
static, ONNX Runtime's quantizer, slimkit's deployed-graph rewrites) and
:func:`slimkit.quantize.export_onnx` for the int8 QDQ graph, :func:`~slimkit.quantize.export_fp32`
for the float one; each graph is loaded by its runtime's entry in :data:`slimkit.runtime.RUNTIMES`
(ONNX Runtime, and OpenVINO reading the same QDQ graph) at one thread. Every variant of one
stage shape is timed interleaved in one process (a shuffled order per round, median of the
rounds; at batch 1 a sample is the mean of ``--calls`` calls), so ratios within a shape hold
on a loaded machine; absolute times do not.

The report gives, per runtime and precision, for each multiple ``m`` what keeping a multiple
of ``m`` costs over the odd multiple of ``m/2`` just below it: the median, over swept widths
``c`` that are odd multiples of ``m/2``, of ``t(c + m/2) / t(c)``. Near or below 1, the kernel
already pays for the wider layer (its channel blocks are ``m`` wide, or the narrower width
falls off its fast path): rounding to ``m`` keeps channels for free. The preferred multiple is
the largest reached by doubling while each doubling costs at most ``--free`` (5%). Then the
time at half and a quarter of each stage's width, the MAC rate (G MAC/s) at a few widths, and
every width's time relative to the original one.

    .venv/bin/python benchmarks/channel_multiples.py

Raw times are saved beside the report (``.json``); ``--from-json`` re-renders it from them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import slimkit
from slimkit.measure import count_macs, cpu_info
from slimkit.quantize import Int8StaticConfig, export_fp32, export_onnx
from slimkit.runtime import RUNTIMES

#: resnet20's stages on 28x28 inputs: (feature map side, original width).
STAGES = ((28, 16), (14, 32), (7, 64))
#: (runtime, precision) pairs timed.
BACKENDS = (
    ("onnxruntime", "int8"),
    ("openvino", "int8"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
)
MULTIPLES = (2, 4, 8, 16, 32)


class Block(nn.Module):
    """A basic block with batch norm folded away: ``width -> inner -> width`` plus identity."""

    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, inner, 3, padding=1)
        self.conv2 = nn.Conv2d(inner, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class Stage(nn.Module):
    def __init__(self, width: int, inner: int, blocks: int = 3) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[Block(width, inner) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.blocks(x), 1).flatten(1)


@dataclass(frozen=True)
class Case:
    kind: str  # "stage" (width c) or "inner" (inner width c at the original width)
    size: int
    original: int
    channels: int

    @property
    def width(self) -> int:
        return self.channels if self.kind == "stage" else self.original

    @property
    def inner(self) -> int:
        return self.channels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=10, help="calls per batch-1 sample")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--stages", default="28,14,7", help="feature map sides to sweep")
    p.add_argument("--free", type=float, default=0.05, help="rounding up costs at most this")
    p.add_argument("--out", default="docs/benchmarks/channel_multiples.md")
    p.add_argument("--from-json", action="store_true", help="re-render from the saved times")
    return p.parse_args(argv)


def widths(original: int, top: int) -> list[int]:
    """``W/4``, then every width from ``W/2`` to ``top``."""
    return [original // 4, *range(original // 2, top + 1)]


def sweep(size: int, original: int) -> list[Case]:
    """The stage's width up to ``W + 8`` (past one multiple of 8 and 16 above ``W``), and the
    inner width up to ``W``."""
    stage = [Case("stage", size, original, c) for c in widths(original, original + 8)]
    inner = [Case("inner", size, original, c) for c in widths(original, original)]
    return stage + inner


def build(case: Case, work: Path, threads: int) -> dict[str, nn.Module]:
    """The case's int8 and fp32 graphs, each loaded by both runtimes."""
    torch.manual_seed(case.channels)
    model = Stage(case.width, case.inner).eval()
    calib = torch.rand(32, case.width, case.size, case.size)  # post-ReLU activations
    q = slimkit.quantize(
        model,
        Int8StaticConfig(calib_batches=1, calib_batch_size=32),
        calib_data=calib,
        progress=False,
    )
    stem = work / f"{case.kind}-{case.size}-{case.channels}"
    graphs = {
        "int8": export_onnx(q, stem.with_suffix(".int8.onnx"), calib[:1]),
        "fp32": export_fp32(model, stem.with_suffix(".fp32.onnx"), calib[:1]),
    }
    return {
        f"{runtime} {precision}": RUNTIMES.get(runtime).load(graphs[precision], threads)
        for runtime, precision in BACKENDS
    }


def _sample(runner: Callable[[torch.Tensor], Any], x: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        runner(x)
    return (time.perf_counter() - start) * 1000.0 / calls


def interleaved(
    runners: dict[tuple[Case, str], nn.Module], batch: int, rounds: int, calls: int
) -> dict[tuple[Case, str], float]:
    """Median ms per call of every runner, in a shuffled order each round."""
    inputs = {key: torch.rand(batch, key[0].width, key[0].size, key[0].size) for key in runners}
    keys = list(runners)
    samples: dict[tuple[Case, str], list[float]] = {key: [] for key in keys}
    order = random.Random(batch)
    with torch.no_grad():
        for key in keys:
            runners[key](inputs[key])
        for _ in range(rounds):
            order.shuffle(keys)
            for key in keys:
                samples[key].append(_sample(runners[key], inputs[key], calls))
    return {key: statistics.median(values) for key, values in samples.items()}


def _cache_torchlib() -> None:
    """Build PyTorch's ONNX op table once, not on every export (half of each export's time
    here; the graphs are the same)."""
    from torch.onnx._internal.exporter import _registration

    apis = _registration.onnxscript_apis
    apis.get_torchlib_ops = functools.cache(apis.get_torchlib_ops)


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(args.threads)
    _cache_torchlib()
    sides = {int(s) for s in args.stages.split(",")}
    batches = [int(b) for b in args.batches.split(",")]
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="slimkit-multiples-"))
    for size, original in (s for s in STAGES if s[0] in sides):
        cases = sweep(size, original)
        runners: dict[tuple[Case, str], nn.Module] = {}
        start = time.perf_counter()
        macs = {}
        for case in cases:
            for backend, runner in build(case, work, args.threads).items():
                runners[(case, backend)] = runner
            x = torch.zeros(1, case.width, size, size)
            macs[case] = count_macs(Stage(case.width, case.inner), x)
        print(f"{size}x{size}: {len(cases)} cases built in {time.perf_counter() - start:.0f} s")
        for batch in batches:
            calls = args.calls if batch == 1 else 1
            times = interleaved(runners, batch, args.rounds, calls)
            for (case, backend), ms in times.items():
                row = {**asdict(case), "backend": backend, "batch": batch, "ms": ms}
                rows.append({**row, "macs": macs[case] * batch})
            print(f"  batch {batch}: timed in {time.perf_counter() - start:.0f} s")
        del runners
    return rows


Times = dict[tuple[str, int, int, int], float]  # (kind, size, channels, batch) -> ms


def by_backend(rows: list[dict[str, Any]]) -> dict[str, Times]:
    out: dict[str, Times] = {}
    for r in rows:
        out.setdefault(r["backend"], {})[(r["kind"], r["size"], r["channels"], r["batch"])] = r[
            "ms"
        ]
    return out


def rounding_cost(times: Times, multiple: int, batch: int) -> float | None:
    """Median of ``t(c + m/2) / t(c)`` over swept widths ``c`` that are odd multiples of
    ``m/2``: what keeping a multiple of ``m`` costs over a multiple of ``m/2`` just below it."""
    half = multiple // 2
    ratios = []
    for (kind, size, c, b), ms in times.items():
        up = (kind, size, c + half, b)
        if b == batch and c % multiple == half and up in times:
            ratios.append(times[up] / ms)
    return statistics.median(ratios) if ratios else None


def preferred(times: Times, batch: int, free: float) -> int:
    """The largest multiple reached by doubling while each doubling costs at most ``free``."""
    best = 1
    for m in MULTIPLES:
        cost = rounding_cost(times, m, batch)
        if cost is None or cost > 1 + free:
            break
        best = m
    return best


def _rate(rows: list[dict[str, Any]], backend: str, key: tuple[str, int, int, int]) -> str:
    for r in rows:
        if r["backend"] == backend and (r["kind"], r["size"], r["channels"], r["batch"]) == key:
            return f"{r['macs'] / r['ms'] / 1e6:.0f}"
    return "-"


def rounding_table(rows: list[dict[str, Any]], batches: list[int], free: float) -> list[str]:
    head = " | ".join(f"m={m}" for m in MULTIPLES)
    lines = [
        f"| runtime | batch | {head} | preferred |",
        "|---|---:|" + "---:|" * len(MULTIPLES) + "---:|",
    ]
    for backend, times in by_backend(rows).items():
        for batch in batches:
            costs = [rounding_cost(times, m, batch) for m in MULTIPLES]
            cells = " | ".join("-" if c is None else f"{c:.2f}×" for c in costs)
            lines.append(f"| {backend} | {batch} | {cells} | {preferred(times, batch, free)} |")
    return lines


def narrowing_table(rows: list[dict[str, Any]], batch: int) -> list[str]:
    """Time at half and a quarter of the original width, relative to the original width."""
    times = by_backend(rows)
    cols = [
        (kind, size, w, c)
        for kind in ("stage", "inner")
        for size, w in sorted({(r["size"], r["original"]) for r in rows}, reverse=True)
        for c in (w // 2, w // 4)
    ]
    head = " | ".join(f"{kind} {size}x{size} {c}/{w}" for kind, size, w, c in cols)
    lines = [f"| runtime | {head} |", "|---|" + "---:|" * len(cols)]
    macs = {(r["kind"], r["size"], r["channels"]): r["macs"] for r in rows if r["batch"] == batch}
    cells = []
    for kind, size, w, c in cols:
        cells.append(f"{macs[(kind, size, c)] / macs[(kind, size, w)]:.2f}")
    lines.append("| MACs | " + " | ".join(cells) + " |")
    for backend, t in times.items():
        cells = [
            f"{t[(kind, size, c, batch)] / t[(kind, size, w, batch)]:.2f}"
            for kind, size, w, c in cols
        ]
        lines.append(f"| {backend} | " + " | ".join(cells) + " |")
    return lines


def rate_table(rows: list[dict[str, Any]], kind: str, batch: int) -> list[str]:
    """G MAC/s at a few widths per stage shape."""
    backends = list(by_backend(rows))
    lines = [
        f"| shape | {kind} width | " + " | ".join(backends) + " |",
        "|---|---:|" + "---:|" * len(backends),
    ]
    sizes = sorted({(r["size"], r["original"]) for r in rows}, reverse=True)
    for size, w in sizes:
        picks = sorted({w // 4, w // 2 - 1, w // 2, w // 2 + 1, 3 * w // 4, w - 1, w, w + 1})
        for c in picks:
            cells = [_rate(rows, b, (kind, size, c, batch)) for b in backends]
            if any(cell != "-" for cell in cells):
                lines.append(f"| {size}x{size}, W={w} | {c} | " + " | ".join(cells) + " |")
    return lines


def curve_table(rows: list[dict[str, Any]], kind: str, size: int, batch: int) -> list[str]:
    """Every swept width: time relative to the original width, per runtime."""
    times = by_backend(rows)
    backends = list(times)
    original = next(r["original"] for r in rows if r["size"] == size)
    lines = [
        "| c | MACs vs W | " + " | ".join(backends) + " |",
        "|---:|---:|" + "---:|" * len(backends),
    ]
    macs = {r["channels"]: r["macs"] for r in rows if (r["kind"], r["size"]) == (kind, size)}
    for c in sorted(macs):
        cells = []
        for b in backends:
            ref = times[b].get((kind, size, original, batch))
            ms = times[b].get((kind, size, c, batch))
            cells.append("-" if ref is None or ms is None else f"{ms / ref:.2f}")
        lines.append(f"| {c} | {macs[c] / macs[original]:.2f} | " + " | ".join(cells) + " |")
    return lines


def machine() -> str:
    cpu = cpu_info()
    flags = ", ".join(f"{k.upper()} {'yes' if cpu[k] else 'no'}" for k in ("avx512", "vnni", "amx"))
    versions = [f"torch {torch.__version__}"]
    for package in ("onnxruntime", "openvino"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    return f"{cpu['name']} ({cpu['cores']} cores; {flags}); {', '.join(versions)}"


#: Hand-written notes in the report, kept when it is written again.
NOTES = re.compile(r"<!-- notes -->\n.*?<!-- end notes -->\n", re.S)


def render(rows: list[dict[str, Any]], meta: dict[str, Any], free: float, notes: str) -> str:
    """The report: the rounding table, ``notes``, then the MAC rates and every width's time."""
    batches = sorted({r["batch"] for r in rows})
    sizes = sorted({r["size"] for r in rows}, reverse=True)
    out = [
        "# Channel multiples per runtime",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Machine: {meta['machine']}. {meta['threads']} thread(s); median of {meta['rounds']} "
        f"interleaved rounds per stage shape (batch 1: each sample the mean of {meta['calls']} "
        f"calls). One-minute load average when timing began: {meta['load']}. Built and run "
        "as `slimkit compress` deploys (`benchmarks/channel_multiples.py`'s docstring).",
        "",
        "## Rounding up to a multiple",
        "",
        "For each multiple m: the median over swept widths c that are odd multiples of m/2 "
        "of t(c + m/2) / t(c), all stage shapes and both sweeps pooled: what keeping the next "
        "multiple of m costs over the multiple of m/2 below it, which has fewer MACs. "
        f"At most {1 + free:.2f}×: the kernel already pays for the wider layer, or runs it "
        "faster; preferred = the largest m reached while every doubling stays within that.",
        "",
        *rounding_table(rows, batches, free),
        "",
        f"## Narrow layers, batch {batches[-1]}",
        "",
        "Time at half and at a quarter of the original width W (stage: every conv; inner: "
        "each block's first conv's outputs), relative to W; the MACs row is the ideal.",
        "",
        *narrowing_table(rows, batches[-1]),
        "",
        notes.rstrip("\n"),
    ]
    for batch in batches:
        for kind in ("stage", "inner"):
            out += ["", f"## G MAC/s, {kind} sweep, batch {batch}", ""]
            out += rate_table(rows, kind, batch)
    for batch in batches:
        for kind in ("stage", "inner"):
            for size in sizes:
                out += [
                    "",
                    f"<details><summary>{kind} sweep, {size}x{size}, batch {batch}: "
                    "time relative to the original width</summary>",
                    "",
                ]
                out += curve_table(rows, kind, size, batch)
                out += ["", "</details>"]
    return "\n".join(out) + "\n"


CASE_FIELDS = ("kind", "size", "original", "channels")


def save_raw(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """The times as ``{case: {batch: {runtime: ms}}}`` with each case's MACs per image."""
    cases: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = " ".join(str(r[f]) for f in CASE_FIELDS)
        case = cases.setdefault(key, {"macs": r["macs"] // r["batch"]})
        case.setdefault(str(r["batch"]), {})[r["backend"]] = round(r["ms"], 5)
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in cases.items()]
    meta_line = f'{{"meta": {json.dumps(meta)},\n "cases": {{\n'
    path.write_text(meta_line + ",\n".join(lines) + "\n }}\n")


def load_raw(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    saved = json.loads(path.read_text())
    rows = []
    for key, case in saved["cases"].items():
        kind, *numbers = key.split()
        fields = dict(zip(CASE_FIELDS, [kind, *map(int, numbers)], strict=True))
        for batch, times in ((int(b), t) for b, t in case.items() if b != "macs"):
            for backend, ms in times.items():
                row = {**fields, "backend": backend, "batch": batch, "ms": ms}
                rows.append({**row, "macs": case["macs"] * batch})
    return rows, saved["meta"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    raw = out.with_suffix(".json")
    if args.from_json:
        rows, meta = load_raw(raw)
    else:
        load = f"{os.getloadavg()[0]:.1f}"
        rows = measure(args)
        flags = " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a)
        meta = {
            "command": f".venv/bin/python benchmarks/channel_multiples.py {flags}".strip(),
            "machine": machine(),
            "threads": args.threads,
            "rounds": args.rounds,
            "calls": args.calls,
            "load": load,
        }
        save_raw(raw, rows, meta)
    kept = NOTES.search(out.read_text()) if out.exists() else None
    notes = kept.group(0) if kept else "<!-- notes -->\n<!-- end notes -->\n"
    out.write_text(render(rows, meta, args.free, notes))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
