"""Structured pruning benchmark: slimkit's criteria vs Torch-Pruning at the same MACs and budget.

For each model and MACs target, every slimkit criterion and the peer (Torch-Pruning's
``MetaPruner`` with group L2 magnitude, its ratio bisected to the same MACs target) prune the
same trained baseline and are fine-tuned with the same TrainConfig. Test accuracy is measured
once at the end. Latency at batch 1 and 64 is measured interleaved in one process (every
variant timed once per round, median over rounds) with torch eager and ONNX Runtime fp32, at a
fixed thread count; "efficiency" is the measured speedup divided by the MACs reduction.

    python benchmarks/structured.py                       # the full table (hours on a CPU)
    python benchmarks/structured.py --tiny                # a smoke run of every code path
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import slimkit
from slimkit.data import Splits
from slimkit.measure import count_params, evaluate_accuracy

BASELINE_RECIPES = {
    "seed-cnn": slimkit.TrainConfig(epochs=12, lr=2e-3, optimizer="adam"),
    "resnet56": slimkit.TrainConfig(epochs=30, lr=0.1, optimizer="sgd", weight_decay=5e-4),
}
CRITERIA = "l2,l1,bn-scale,taylor,activation,apoz,random,torch-pruning"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="resnet56,seed-cnn")
    p.add_argument("--targets", default="0.5,0.3", help="fractions of MACs to keep")
    p.add_argument("--criteria", default=CRITERIA)
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--limit-eval", type=int, default=None)
    p.add_argument("--baseline-epochs", type=int, default=None, help="override the recipes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--workdir", default="runs/bench-structured")
    p.add_argument("--out", default="docs/benchmarks/structured.md")
    p.add_argument("--tiny", action="store_true", help="seed-cnn, one target, two criteria")
    args = p.parse_args(argv)
    if args.tiny:
        args.models, args.targets, args.criteria = "seed-cnn", "0.5", "l2,torch-pruning"
        args.finetune_epochs, args.baseline_epochs, args.rounds = 1, 1, 3
        args.limit_train, args.limit_eval = args.limit_train or 512, args.limit_eval or 256
        args.out = args.out.replace(".md", "-tiny.md")
    return args


def baseline(name: str, splits: Splits, args: argparse.Namespace) -> torch.nn.Module:
    workdir = Path(args.workdir)
    tag = f"{name}-e{args.baseline_epochs}" if args.baseline_epochs else name
    path = workdir / f"{tag}.safetensors"
    if path.exists():
        return slimkit.load(path)
    recipe = BASELINE_RECIPES[name]
    if args.baseline_epochs:
        recipe = slimkit.TrainConfig(**{**recipe.to_dict(), "epochs": args.baseline_epochs})
    model = slimkit.create_model(name)
    slimkit.train(model, splits, recipe, checkpoint=workdir / f"{tag}.ckpt", resume=True)
    slimkit.save(
        model, path, provenance={"command": "benchmarks/structured.py", "config": recipe.to_dict()}
    )
    return model


def torch_pruning_to(
    model: torch.nn.Module, target: float, example: torch.Tensor
) -> torch.nn.Module:
    """The peer: Torch-Pruning MetaPruner, group L2, local ratio bisected to the MACs target."""
    import torch_pruning as tp

    base = slimkit.count_macs(model, example)
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]

    def at(ratio: float) -> tuple[torch.nn.Module, float]:
        candidate = copy.deepcopy(model)
        last = [m for m in candidate.modules() if isinstance(m, torch.nn.Linear)][-1:]
        pruner = tp.pruner.MetaPruner(
            candidate,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=last,
        )
        pruner.step()
        return candidate, slimkit.count_macs(candidate, example) / base

    del classifier
    low, high, best = 0.0, 0.95, None
    for _ in range(12):
        ratio = (low + high) / 2
        candidate, fraction = at(ratio)
        if fraction > target:
            low = ratio
        else:
            high, best = ratio, (candidate, fraction)
        if abs(fraction - target) <= 0.01:
            break
    assert best is not None, "Torch-Pruning never reached the target"
    return best[0]


def prune_variant(
    model: torch.nn.Module, criterion: str, target: float, splits: Splits, example: torch.Tensor
) -> torch.nn.Module:
    if criterion == "torch-pruning":
        return torch_pruning_to(model, target, example)
    cfg = slimkit.StructuredConfig(target_macs=target, importance=criterion)
    return slimkit.prune(model, cfg, data=splits, example_inputs=example, progress=False)


def onnx_runner(
    model: torch.nn.Module, example: torch.Tensor, work: Path, tag: str, threads: int
) -> Any:
    """An ONNX Runtime fp32 session of ``model`` (batch norm folded), or None if export fails."""
    from slimkit.quantize import OrtModule, export_onnx, fold_batchnorm

    try:
        folded = copy.deepcopy(model).eval()
        fold_batchnorm(folded)  # in place
        return OrtModule(export_onnx(folded, work / f"{tag}.onnx", example), threads)
    except Exception as err:  # the peer's models may use ops the exporter lacks
        print(f"  onnx export of {tag} failed: {err}")
        return None


def interleaved(runners: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    for fn in runners.values():
        fn(), fn()  # warm-up
    for _ in range(rounds):
        for name, fn in runners.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(t) for name, t in times.items()}


@torch.no_grad()
def measure_latency(
    variants: dict[str, dict[str, Any]], args: argparse.Namespace, shape: tuple[int, ...]
) -> None:
    work = Path(tempfile.mkdtemp(prefix="slimkit-sbench-"))
    runners: dict[str, Callable[[], object]] = {}
    for batch in (1, 64):
        x = torch.randn(batch, *shape)
        for name, v in variants.items():
            model = v["model"].eval()
            runners[f"{name}|torch|{batch}"] = lambda m=model, x=x: m(x)
            if batch == 1:
                v["ort"] = onnx_runner(model, x, work, name.replace(" ", "_"), args.threads)
            if v.get("ort") is not None:
                runners[f"{name}|ort|{batch}"] = lambda m=v["ort"], x=x: m(x)
    for key, ms in interleaved(runners, args.rounds).items():
        name, backend, batch = key.split("|")
        variants[name][f"{backend}_b{batch}_ms"] = ms


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = (
        "| model | MACs target | method | test top-1 | params | MACs | eager b1 ms | eager b64 ms "
        "| ORT b1 ms | ORT b64 ms | speedup b64 (eager) | efficiency |\n|---|---|---|---:|---:|---:|"
        "---:|---:|---:|---:|---:|---:|"
    )
    lines = [
        "# Structured pruning benchmark",
        "",
        f"Written by `benchmarks/structured.py` on {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {args.threads} thread(s); fine-tune {args.finetune_epochs} epoch(s) "
        f"at lr {args.finetune_lr} for every method; latency medians of {args.rounds} interleaved rounds.",
        "Efficiency = measured eager b64 speedup ÷ MACs reduction (1.0 = the ideal speedup is real).",
        "",
        head,
    ]
    fmt = lambda v, spec: format(v, spec) if isinstance(v, int | float) else "–"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['target']} | {r['method']} | {fmt(r['test_accuracy'], '.2f')} | "
            f"{r['params']:,} | {r['macs']:,} | {fmt(r.get('torch_b1_ms'), '.3f')} | "
            f"{fmt(r.get('torch_b64_ms'), '.2f')} | {fmt(r.get('ort_b1_ms'), '.3f')} | "
            f"{fmt(r.get('ort_b64_ms'), '.2f')} | {fmt(r.get('speedup'), '.2f')} | {fmt(r.get('efficiency'), '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = slimkit.load_data(
        "fashion-mnist", limit_train=args.limit_train, limit_eval=args.limit_eval
    )
    example = splits.example_input(1)
    finetune = slimkit.TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr)
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        base = baseline(name, splits, args)
        variants: dict[str, dict[str, Any]] = {"baseline": {"model": base, "target": "–"}}
        for target in map(float, args.targets.split(",")):
            for criterion in args.criteria.split(","):
                print(f"{name}: {criterion} → {target:.0%} MACs", flush=True)
                pruned = prune_variant(base, criterion, target, splits, example)
                if finetune.epochs:
                    slimkit.train(pruned, splits, finetune, progress=False)
                variants[f"{criterion} @{target}"] = {"model": pruned, "target": target}
        measure_latency(variants, args, tuple(example.shape[1:]))
        base_macs, base_ms = slimkit.count_macs(base, example), variants["baseline"]["torch_b64_ms"]
        for label, v in variants.items():
            macs = slimkit.count_macs(v["model"], example)
            rows.append(
                {
                    "model": name,
                    "target": v["target"],
                    "method": label.split(" @")[0],
                    "test_accuracy": evaluate_accuracy(v["model"], splits.test),
                    "params": count_params(v["model"]),
                    "macs": macs,
                    **{k: val for k, val in v.items() if k.endswith("_ms")},
                    "speedup": base_ms / v["torch_b64_ms"],
                    "efficiency": (base_ms / v["torch_b64_ms"]) / (base_macs / macs),
                }
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(rows, args))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
