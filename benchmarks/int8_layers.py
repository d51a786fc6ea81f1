"""Where int8 on ONNX Runtime gains over eager PyTorch fp32, layer by layer, and how far it can go.

For a float artifact at a fixed batch size and thread count, in one process:

- **whole model**: eager fp32 against slimkit's int8-static graph (minmax, calibrated on 8
  training batches) on ONNX Runtime, timed interleaved (median call, as
  ``benchmarks/quantize.py``), together with a **probe**: a wide network (four 256-channel
  3×3 convs at 14×14) quantized by slimkit the same way, all-int8, and its fp32 original;
- **per layer**: every convolution and linear layer called alone in eager PyTorch on its real
  input (captured from the model), interleaved with the whole eager model; and the layer's
  kernels inside the int8 graph, from ONNX Runtime's profiler
  (``slimkit.quantize._ort_profile``).

This shared CPU drifts by a third within minutes, so only what is timed interleaved is
compared directly. Per-layer times are rescaled to the whole-model timing: an eager layer by
(whole eager model in the first timing / whole eager model beside the layers), an int8 layer
by (int8 model in the first timing / sum of all its profiled kernels), which also takes out
the profiler's overhead.

The probe's int8 rate (its MACs over its time, its quantize and layout kernels included), or
the model's fastest layer if that is faster, is the best this CPU's int8 kernels reach on
3×3 convs. With every multiply-accumulate of the model at that rate, the int8 graph would take ``MACs / rate``; eager's time over that is an
upper bound on the speed-up any rewrite of the int8 graph could reach here with these kernels
(non-conv kernels ignored).

Usage:
    .venv/bin/python benchmarks/int8_layers.py --artifact runs/bench/resnet20.safetensors
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import slimkit
from slimkit._hooks import run_with_hooks
from slimkit.measure import layer_macs
from slimkit.quantize import Int8StaticConfig, OrtModule, export_onnx, onnx_path, quantize
from slimkit.quantize._ort_profile import attribute_kernels, kernel_times, layer_nodes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantize import _interleaved, _machine, _write

WEIGHTED = (nn.Conv2d, nn.Linear)
PROBE_CONVS, PROBE_SIZE = 4, 14
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> str:
    """The x86 vector extensions that decide ONNX Runtime's int8 kernel, as /proc/cpuinfo says."""
    try:
        found = re.search(r"flags\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        found = None
    if found is None:
        return "unknown"
    flags = set(found.group(1).split())
    return ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FLAGS)


def layer_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input each convolution and linear layer receives on ``x``, by module path."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_module: nn.Module, inputs: Any, _output: Any) -> None:
            seen.setdefault(name, inputs[0].detach().clone())

        return hook

    run_with_hooks(
        model, x, ((m, keep(n)) for n, m in model.named_modules() if isinstance(m, WEIGHTED))
    )
    return seen


def eager_layer_ms(model: nn.Module, x: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median eager fp32 call of every weighted layer alone on its real input, in ms, timed
    interleaved with the whole model (key ``""``)."""
    modules = dict(model.named_modules())
    inputs = layer_inputs(model, x)
    runners = {name: (lambda m=modules[name], t=t: m(t)) for name, t in inputs.items()}
    runners[""] = lambda: model(x)
    with torch.no_grad():
        return _interleaved(runners, rounds)


def int8_layer_ms(graph: Path, batch: int, threads: int, runs: int) -> dict[str, float]:
    """Profiled ms per weighted layer of the int8 graph, and the sum of all kernels (``""``)."""
    kernels = kernel_times(graph, batch, threads, runs)
    return {**attribute_kernels(kernels, layer_nodes(graph)), "": sum(k["ms"] for k in kernels)}


def probe_network(channels: int = 256) -> nn.Module:
    """Wide 3×3 convs: the shapes int8 kernels run fastest on, and little else."""
    layers: list[nn.Module] = []
    for _ in range(PROBE_CONVS):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers).eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--artifact", default="runs/bench/resnet20.safetensors")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--runs", type=int, default=20, help="profiled runs of the int8 graph")
    p.add_argument("--out", default="docs/benchmarks/quantize.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    splits = slimkit.load_data("fashion-mnist", limit_train=2000)
    model = slimkit.load(args.artifact).eval()
    x = splits.example_input(args.batch)
    arch = str(model.slimkit_spec["arch"]["name"])  # type: ignore[index]
    probe = probe_network()
    px = torch.rand(args.batch, 256, PROBE_SIZE, PROBE_SIZE)
    with tempfile.TemporaryDirectory(prefix="slimkit-int8-layers-") as tmp:
        work = Path(tmp)
        graph = onnx_path(
            slimkit.save(
                quantize(model, Int8StaticConfig(), calib_data=splits, progress=False),
                work / "q.safetensors",
            )
        )
        qprobe = quantize(probe, Int8StaticConfig(), calib_data=px, progress=False)
        probe_graph = export_onnx(qprobe, work / "probe.onnx", px[:1])
        ort, ort_probe = OrtModule(graph, args.threads), OrtModule(probe_graph, args.threads)
        runners = {
            "eager": lambda: model(x),
            "int8": lambda: ort(x),
            "probe eager": lambda: probe(px),
            "probe int8": lambda: ort_probe(px),
        }
        with torch.no_grad():
            whole = _interleaved(runners, args.rounds)
        eager = eager_layer_ms(model, x, args.rounds)
        int8 = int8_layer_ms(graph, args.batch, args.threads, args.runs)
    eager_scale, int8_scale = whole["eager"] / eager.pop(""), whole["int8"] / int8.pop("")
    eager = {n: ms * eager_scale for n, ms in eager.items()}
    int8 = {n: ms * int8_scale for n, ms in int8.items()}
    macs = {n: m * args.batch / 1e6 for n, m in layer_macs(model, x[:1]).items()}
    probe_macs = sum(layer_macs(probe, px[:1]).values()) * args.batch / 1e6
    section = render(args, arch, whole, eager, int8, macs, probe_macs)
    _write(Path(args.out), f"int8-layers-{arch}", section)
    print(section)
    return 0


def render(
    args: argparse.Namespace,
    arch: str,
    whole: dict[str, float],
    eager: dict[str, float],
    int8: dict[str, float],
    macs: dict[str, float],
    probe_macs: float,
) -> str:
    rows = [
        f"| {name} | {macs[name]:.1f} | {eager[name]:.3f} | {int8[name]:.3f} | "
        f"{eager[name] / int8[name]:.2f}× | {macs[name] / eager[name]:.1f} | "
        f"{macs[name] / int8[name]:.1f} |"
        for name in eager
        if name in int8
    ]
    total_macs = sum(macs.values())
    probe_rate = probe_macs / whole["probe int8"]
    fastest = max(macs[n] / int8[n] for n in int8 if n in macs)
    floor_ms = total_macs / max(probe_rate, fastest)
    command = (
        f".venv/bin/python benchmarks/int8_layers.py --artifact {args.artifact} --batch "
        f"{args.batch} --threads {args.threads} --rounds {args.rounds} --runs {args.runs}"
    )
    lines = [
        f"<!-- section: int8-layers-{arch} -->",
        f"## Where int8 gains on {arch}, layer by layer (`{args.artifact}`)",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {_machine(args.threads)}; CPU flags: {cpu_flags()}. Batch {args.batch}. "
        f"Medians of {args.rounds} interleaved rounds; per-layer times rescaled to the "
        "whole-model timing (see `benchmarks/int8_layers.py`).",
        "",
        f"- Whole model: eager fp32 {whole['eager']:.2f} ms, slimkit int8 on ONNX Runtime "
        f"{whole['int8']:.2f} ms: **{whole['eager'] / whole['int8']:.2f}×**.",
        f"- Probe ({PROBE_CONVS} convs of 256 channels, 3×3, {PROBE_SIZE}×{PROBE_SIZE}), timed "
        f"with them: int8 {probe_rate:.1f} G MAC/s, eager fp32 "
        f"{probe_macs / whole['probe eager']:.1f} G MAC/s "
        f"({whole['probe eager'] / whole['probe int8']:.2f}×). The fastest {arch} layer in "
        f"int8: {fastest:.1f} G MAC/s.",
        f"- {total_macs:.0f} M MACs per batch at the faster of those two rates take "
        f"{floor_ms:.2f} ms: "
        "no int8 graph made of these kernels runs this model faster, so its speed-up over "
        f"eager fp32 is at most **{whole['eager'] / floor_ms:.2f}×** on this CPU.",
        "",
        "| layer | M MACs | eager fp32 (ms) | int8 ORT (ms) | int8 speed-up | eager G MAC/s | "
        "int8 G MAC/s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"<!-- end: int8-layers-{arch} -->",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
