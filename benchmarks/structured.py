"""Structured pruning benchmark: slimkit's criteria vs Torch-Pruning at the same MACs and budget.

For each model and MACs target, every slimkit criterion and the peer (Torch-Pruning's
``MetaPruner`` with group L2 magnitude, its ratio bisected to the same MACs target) prune the
same trained baseline and are fine-tuned with the same TrainConfig. A control row fine-tunes the
unpruned baseline with that same config, so the gain from the extra epochs alone is visible.
Test accuracy is measured once at the end of each variant. Latency at batch 1 and 64 is
measured interleaved in one process (every variant timed once per round, median over rounds)
with torch eager and ONNX Runtime fp32, at a fixed thread count; "efficiency" is the measured
speedup divided by the MACs reduction.

Each finished variant is saved under ``--workdir`` and recorded in ``<workdir>/<model>.json``,
so an interrupted run resumes where it stopped. The Markdown doc is rendered from every model's
JSON file present, so models can be run in separate invocations with their own settings:

    python benchmarks/structured.py --models seed-cnn
    python benchmarks/structured.py --models resnet56 --limit-train 10000 --baseline-epochs 10 \\
        --finetune-epochs 3 --finetune-optimizer sgd --finetune-lr 0.01
    python benchmarks/structured.py --tiny                # a smoke run of every code path
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import slimkit
from slimkit.data import Splits
from slimkit.measure import count_params, evaluate_accuracy, interleaved_latency

BASELINE_RECIPES = {
    "seed-cnn": slimkit.TrainConfig(epochs=12, lr=2e-3, optimizer="adam"),
    "resnet20": slimkit.TrainConfig(epochs=10, lr=0.1, optimizer="sgd", weight_decay=5e-4),
    "resnet56": slimkit.TrainConfig(epochs=10, lr=0.1, optimizer="sgd", weight_decay=5e-4),
}
CRITERIA = "l2,l1,bn-scale,taylor,activation,apoz,random,torch-pruning"
CONTROL = "dense + same fine-tune"
#: A criterion ending in this is fine-tuned by logit distillation from the unpruned model
#: (same TrainConfig) instead of cross-entropy: "l2+kd", "torch-pruning+kd".
KD_SUFFIX = "+kd"
#: A slimkit criterion ending in this ranks units across all groups (``Global()``, importance
#: normalised per group) instead of pruning every group by the same ratio: "l2/global".
GLOBAL_SUFFIX = "/global"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="seed-cnn")
    p.add_argument("--targets", default="0.5,0.3", help="fractions of MACs to keep")
    p.add_argument("--criteria", default=CRITERIA)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--finetune-optimizer", default="adam")
    p.add_argument(
        "--finetune-seed",
        type=int,
        default=0,
        help="fine-tuning seed; rows of a seed other than 0 are recorded as '<method>@<target> seed N'",
    )
    p.add_argument("--limit-train", type=int, default=None, help="train/fine-tune on N images")
    p.add_argument("--limit-eval", type=int, default=None)
    p.add_argument("--baseline-epochs", type=int, default=None, help="override the recipe")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--workdir", default="runs/bench-structured")
    p.add_argument("--out", default="docs/benchmarks/structured.md")
    p.add_argument("--skip-latency", action="store_true", help="train only; time in a later run")
    p.add_argument(
        "--latency-target",
        type=float,
        default=None,
        help="also prune the baseline with StructuredConfig(target_latency=F) at batch 64 and "
        "re-measure its latency against the baseline, interleaved",
    )
    p.add_argument("--tiny", action="store_true", help="seed-cnn, one target, two criteria")
    args = p.parse_args(argv)
    if args.tiny:
        args.models, args.targets, args.criteria = "seed-cnn", "0.5", "l2,torch-pruning"
        args.finetune_epochs, args.baseline_epochs, args.rounds = 1, 1, 3
        args.limit_train, args.limit_eval = args.limit_train or 512, args.limit_eval or 256
        args.workdir, args.out = args.workdir + "-tiny", args.out.replace(".md", "-tiny.md")
    return args


def baseline_recipe(name: str, args: argparse.Namespace) -> slimkit.TrainConfig:
    recipe = BASELINE_RECIPES[name]
    if args.baseline_epochs:
        recipe = slimkit.TrainConfig(**{**recipe.to_dict(), "epochs": args.baseline_epochs})
    return recipe


def baseline(name: str, splits: Splits, args: argparse.Namespace, work: Path) -> torch.nn.Module:
    path = work / "baseline.safetensors"
    if path.exists():
        return slimkit.load(path)
    recipe = baseline_recipe(name, args)
    model = slimkit.create_model(name)
    slimkit.train(model, splits, recipe, checkpoint=work / "baseline.ckpt", resume=True)
    slimkit.save(model, path, provenance={"command": "benchmarks/structured.py"})
    return model


def torch_pruning_at(
    model: torch.nn.Module, ratio: float, example: torch.Tensor
) -> torch.nn.Module:
    """Torch-Pruning's MetaPruner, group L2 magnitude, one local ratio, classifier ignored.

    Attention blocks that keep ``qkv`` and ``num_heads`` (timm's ViT family) are handed to
    Torch-Pruning the way its own ViT example does: the head count is declared, every head
    keeps its place and loses the same dimensions, and the block's head attributes are updated
    after the step (the softmax scale stays, so the kept dimensions compute what they did).
    """
    import torch_pruning as tp

    candidate = copy.deepcopy(model)
    last = [m for m in candidate.modules() if isinstance(m, torch.nn.Linear)][-1:]
    attention = [m for m in candidate.modules() if _is_qkv_attention(m)]
    pruner = tp.pruner.MetaPruner(
        candidate,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=last,
        num_heads={m.qkv: m.num_heads for m in attention},
        prune_head_dims=True,
        prune_num_heads=False,
    )
    pruner.step()
    for m in attention:
        m.num_heads = pruner.num_heads[m.qkv]
        m.head_dim = m.qkv.out_features // (3 * m.num_heads)
        if hasattr(m, "attn_dim"):
            m.attn_dim = m.num_heads * m.head_dim
    return candidate


def _is_qkv_attention(module: torch.nn.Module) -> bool:
    return isinstance(getattr(module, "qkv", None), torch.nn.Linear) and isinstance(
        getattr(module, "num_heads", None), int
    )


def torch_pruning_ratio(model: torch.nn.Module, target: float, example: torch.Tensor) -> float:
    """The largest-accuracy choice for the peer: its ratio bisected to just under the MACs target."""
    base = slimkit.count_macs(model, example)
    low, high, best = 0.0, 0.95, None
    for _ in range(14):
        ratio = (low + high) / 2
        fraction = slimkit.count_macs(torch_pruning_at(model, ratio, example), example) / base
        if fraction > target:
            low = ratio
        else:
            high, best = ratio, ratio
            if target - fraction <= 0.005:
                break
    assert best is not None, "Torch-Pruning never reached the target"
    return best


def run_variant(
    base: torch.nn.Module,
    criterion: str,
    target: float,
    splits: Splits,
    example: torch.Tensor,
    finetune: slimkit.TrainConfig,
    path: Path,
) -> dict[str, Any]:
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    criterion, kd = criterion.removesuffix(KD_SUFFIX), criterion.endswith(KD_SUFFIX)
    criterion, scope = (
        (criterion.removesuffix(GLOBAL_SUFFIX), slimkit.Global())
        if criterion.endswith(GLOBAL_SUFFIX)
        else (criterion, slimkit.PerLayer())
    )
    if criterion == CONTROL:
        pruned = copy.deepcopy(base)
    elif criterion == "torch-pruning":
        extra["tp_ratio"] = torch_pruning_ratio(base, target, example)
        pruned = torch_pruning_at(base, extra["tp_ratio"], example)
    else:
        cfg = slimkit.StructuredConfig(target_macs=target, importance=criterion, scope=scope)
        pruned = slimkit.prune(base, cfg, data=splits, example_inputs=example, progress=False)
    prune_s = time.perf_counter() - start
    if finetune.epochs and kd:
        # slimkit's default recovery when the unpruned model is at hand (prune --recover kd).
        slimkit.distill(pruned, base, splits, slimkit.DistillConfig(train=finetune), progress=False)
    elif finetune.epochs:
        slimkit.train(pruned, splits, finetune, progress=False)
    if criterion == "torch-pruning":
        save_file({k: v.contiguous() for k, v in pruned.state_dict().items()}, str(path))
    else:
        slimkit.save(pruned, path)
    return {
        "test_accuracy": evaluate_accuracy(pruned, splits.test),
        "params": count_params(pruned),
        "macs": slimkit.count_macs(pruned, example),
        "prune_s": round(prune_s, 1),
        "total_s": round(time.perf_counter() - start, 1),
        **extra,
    }


def reload(row: dict[str, Any], base: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    if row["method"].removesuffix(KD_SUFFIX) == "torch-pruning":
        model = torch_pruning_at(base, row["tp_ratio"], example)
        model.load_state_dict(load_file(row["path"]))
        return model.eval()
    return slimkit.load(row["path"])


def onnx_runner(model: torch.nn.Module, example: torch.Tensor, path: Path, threads: int) -> Any:
    """An ONNX Runtime fp32 session of ``model`` (batch norm folded), or None if export fails."""
    from slimkit.quantize import OrtModule, export_onnx, fold_batchnorm

    try:
        folded = copy.deepcopy(model).eval()
        fold_batchnorm(folded)  # in place
        return OrtModule(export_onnx(folded, path, example), threads)
    except Exception as err:  # the peer's models may use ops the exporter lacks
        print(f"  onnx export of {path.stem} failed: {err}", flush=True)
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
    models: dict[str, torch.nn.Module], shape: tuple[int, ...], threads: int, rounds: int
) -> dict[str, dict[str, float]]:
    scratch = Path(tempfile.mkdtemp(prefix="slimkit-sbench-"))
    runners: dict[str, Callable[[], object]] = {}
    for i, (key, model) in enumerate(models.items()):
        ort = onnx_runner(model.eval(), torch.randn(1, *shape), scratch / f"v{i}.onnx", threads)
        for batch in (1, 64):
            x = torch.randn(batch, *shape)
            runners[f"{key}|torch_b{batch}_ms"] = lambda m=model, x=x: m(x)
            if ort is not None:
                runners[f"{key}|ort_b{batch}_ms"] = lambda m=ort, x=x: m(x)
    out: dict[str, dict[str, float]] = {key: {} for key in models}
    for name, ms in interleaved(runners, rounds).items():
        key, column = name.split("|")
        out[key][column] = ms
    return out


def run_model(name: str, args: argparse.Namespace) -> None:
    work = Path(args.workdir) / name
    work.mkdir(parents=True, exist_ok=True)
    results_path = Path(args.workdir) / f"{name}.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"rows": {}}
    splits = slimkit.load_data(
        "fashion-mnist", limit_train=args.limit_train, limit_eval=args.limit_eval
    )
    example = splits.example_input(1)
    base = baseline(name, splits, args, work)
    finetune = slimkit.TrainConfig(
        epochs=args.finetune_epochs,
        lr=args.finetune_lr,
        optimizer=args.finetune_optimizer,
        weight_decay=5e-4 if args.finetune_optimizer == "sgd" else 0.0,
        seed=args.finetune_seed,
    )
    results["settings"] = {
        "baseline": baseline_recipe(name, args).to_dict(),
        "finetune": {k: v for k, v in finetune.to_dict().items() if k != "seed"},
        "train_images": len(splits.train),
        "test_images": len(splits.test),
        "threads": args.threads,
        "rounds": args.rounds,
    }
    command = "python benchmarks/structured.py " + " ".join(args.argv)
    commands = results.get("commands", [])
    results["commands"] = commands + [command] * (command not in commands)
    rows = results["rows"]
    if "baseline" not in rows:
        rows["baseline"] = {
            "method": "baseline",
            "target": None,
            "test_accuracy": evaluate_accuracy(base, splits.test),
            "params": count_params(base),
            "macs": slimkit.count_macs(base, example),
            "path": str(work / "baseline.safetensors"),
        }
    # The control row is fine-tuned once, with seed 0; other seeds repeat the pruned rows only.
    jobs = [(CONTROL, None)] * (args.finetune_seed == 0) + [
        (criterion, float(t))
        for t in args.targets.split(",")
        for criterion in args.criteria.split(",")
    ]
    for criterion, target in jobs:
        key = criterion if target is None else f"{criterion}@{target}"
        key += f" seed {args.finetune_seed}" if args.finetune_seed else ""
        if key in rows:
            continue
        print(f"{name}: {key}", flush=True)
        path = work / f"{key.replace(' ', '_').replace('+', '').replace('/', '-')}.safetensors"
        row = run_variant(base, criterion, target or 1.0, splits, example, finetune, path)
        rows[key] = {"method": criterion, "target": target, "path": str(path), **row}
        if args.finetune_seed:
            rows[key]["seed"] = args.finetune_seed
        print(f"  {json.dumps(rows[key])}", flush=True)
        _write_json(results_path, results)
    if args.latency_target is not None:
        results["latency_target"] = check_latency_target(base, splits, args)
        _write_json(results_path, results)
    if args.skip_latency:
        return
    print(f"{name}: latency", flush=True)
    models = {key: reload(row, base, example) for key, row in rows.items()}
    latency = measure_latency(models, tuple(example.shape[1:]), args.threads, args.rounds)
    for key, values in latency.items():
        rows[key].update(values)
    _write_json(results_path, results)


def check_latency_target(
    base: torch.nn.Module, splits: Splits, args: argparse.Namespace
) -> dict[str, Any]:
    """Prune to a latency target, then time the result against the baseline independently."""
    x = splits.example_input(64)
    cfg = slimkit.StructuredConfig(target_latency=args.latency_target, latency_threads=args.threads)
    pruned = slimkit.prune(base, cfg, example_inputs=x, progress=False)
    fractions = []
    for _ in range(5):  # five independent interleaved measurements of the pair
        base_ms, pruned_ms = interleaved_latency([base.eval(), pruned.eval()], x, args.rounds)
        fractions.append(pruned_ms / base_ms)
    measured = statistics.median(fractions)
    return {
        "target": args.latency_target,
        "batch": 64,
        "search_fraction": pruned.slimkit_prune_report["steps"][-1]["fraction"],
        "remeasured_fractions": fractions,
        "remeasured_fraction": measured,
        "within_10_percent": abs(measured - args.latency_target) <= 0.1 * args.latency_target,
        "macs_fraction": slimkit.count_macs(pruned, x[:1]) / slimkit.count_macs(base, x[:1]),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


NOTES = re.compile(r"<!-- notes: (\S+) -->\n.*?<!-- end notes -->\n", re.DOTALL)


def kept_notes(doc: Path) -> dict[str, str]:
    """Hand-written notes per model (between notes markers) of the current doc, kept on rewrite."""
    text = doc.read_text() if doc.exists() else ""
    return {m.group(1): m.group(0) for m in NOTES.finditer(text)}


def markdown(workdir: Path, notes: dict[str, str] | None = None) -> str:
    lines = [
        "# Structured pruning benchmark",
        "",
        f"Written by `benchmarks/structured.py` on {platform.machine()}, torch {torch.__version__}. "
        "Fashion-MNIST; test top-1 on the test split after fine-tuning. Every method of a model "
        "gets the same fine-tune config; the *dense + same fine-tune* row gives that config to the "
        "unpruned model, so the effect of the extra epochs alone is visible. Torch-Pruning "
        "(`MetaPruner`, `GroupMagnitudeImportance(p=2)`, classifier ignored) has its ratio "
        "bisected to just under the same MACs target. A method ending in *+kd* is fine-tuned "
        "with the same config by logit distillation from the unpruned baseline (slimkit's "
        "`DistillConfig()` defaults: T = 4, α = 0.9) instead of cross-entropy, the recovery "
        "`slimkit prune --recover kd` uses. A method ending in */global* ranks channels across "
        "all groups (`scope=Global()`) instead of the same ratio in every group. Latency: medians of interleaved rounds in "
        "one process, eager PyTorch and ONNX Runtime fp32 (batch norm folded). "
        "Speedup = baseline eager b64 ÷ variant eager b64; efficiency = speedup ÷ MACs reduction "
        "(1.0: the whole theoretical speedup is real).",
        "",
    ]
    for results_path in sorted(workdir.glob("*.json")):
        results = json.loads(results_path.read_text())
        s = results["settings"]
        rows = results["rows"]
        base = rows["baseline"]
        lines += [
            f"## {results_path.stem}",
            "",
            *([(notes or {})[results_path.stem]] if results_path.stem in (notes or {}) else []),
            f"Baseline: {_recipe(s['baseline'])}; fine-tune: {_recipe(s['finetune'])}; "
            f"{s['train_images']:,} training images, {s['test_images']:,} test images; "
            f"{s['threads']} thread(s), {s['rounds']} latency rounds.",
            "",
            "```\n" + "\n".join(results.get("commands", [])) + "\n```",
            "",
            "| MACs target | method | test top-1 | Δ vs baseline | params | MACs | eager b1 ms "
            "| eager b64 ms | ORT b1 ms | ORT b64 ms | speedup b64 | efficiency | ORT speedup b64 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows.values():
            lines.append(_row(r, base))
        lines.append("")
        lines += _seed_summary(rows)
        if "latency_target" in results:
            lines += [_latency_target_line(results["latency_target"]), ""]
    return "\n".join(lines)


def _seed_summary(rows: dict[str, Any]) -> list[str]:
    """Mean ± std of test accuracy for every method and target fine-tuned with several seeds."""
    by_method: dict[tuple[str, Any], list[float]] = {}
    for r in rows.values():
        if r.get("target") is not None:
            by_method.setdefault((r["method"], r["target"]), []).append(r["test_accuracy"])
    lines = [
        f"- {method} at {target:.0%} of the MACs, {len(acc)} fine-tuning seeds: "
        f"{statistics.mean(acc):.2f} ± {statistics.stdev(acc):.2f}"
        for (method, target), acc in by_method.items()
        if len(acc) > 1
    ]
    return ["Over fine-tuning seeds (test top-1, mean ± std):", "", *lines, ""] if lines else []


def _latency_target_line(t: dict[str, Any]) -> str:
    spread = ", ".join(f"{f:.3f}" for f in t["remeasured_fractions"])
    verdict = "within 10%" if t["within_10_percent"] else "NOT within 10%"
    return (
        f"**Latency target.** `StructuredConfig(target_latency={t['target']})` at batch "
        f"{t['batch']} (no fine-tuning; latency does not depend on the weights): the search "
        f"measured {t['search_fraction']:.3f} of the baseline's eager latency; re-measured "
        f"afterwards, interleaved with the baseline in five rounds of medians: {spread} "
        f"(median {t['remeasured_fraction']:.3f}, {verdict} of the target); "
        f"MACs kept {t['macs_fraction']:.1%}."
    )


def _recipe(cfg: dict[str, Any]) -> str:
    return f"{cfg['epochs']} epochs, {cfg['optimizer']} lr {cfg['lr']} {cfg['schedule']}"


def _row(r: dict[str, Any], base: dict[str, Any]) -> str:
    def fmt(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) else "–"

    speed = _ratio(base.get("torch_b64_ms"), r.get("torch_b64_ms"))
    ort_speed = _ratio(base.get("ort_b64_ms"), r.get("ort_b64_ms"))
    efficiency = speed / (base["macs"] / r["macs"]) if speed else None
    target = f"{r['target']:.0%}" if r["target"] else "–"
    method = r["method"] + (f" (seed {r['seed']})" if r.get("seed") else "")
    return (
        f"| {target} | {method} | "
        f"{r['test_accuracy']:.2f} | "
        f"{r['test_accuracy'] - base['test_accuracy']:+.2f} | {r['params']:,} | {r['macs']:,} | "
        f"{fmt(r.get('torch_b1_ms'), '.3f')} | {fmt(r.get('torch_b64_ms'), '.2f')} | "
        f"{fmt(r.get('ort_b1_ms'), '.3f')} | {fmt(r.get('ort_b64_ms'), '.2f')} | "
        f"{fmt(speed, '.2f')}× | {fmt(efficiency, '.2f')} | {fmt(ort_speed, '.2f')}× |"
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def main(argv: list[str] | None = None) -> int:
    import sys

    args = parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(args.threads)
    for name in args.models.split(","):
        run_model(name, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(Path(args.workdir), kept_notes(out)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
