"""Unstructured pruning benchmark: slimkit's criteria vs torch.nn.utils.prune, same fine-tune budget.

For each model and sparsity, every criterion (and the peer, PyTorch's global L1
``torch.nn.utils.prune.global_unstructured``) prunes the same trained baseline, fine-tunes it with
the same TrainConfig, and is measured on the Fashion-MNIST test set and by artifact bytes.
Results are appended to a JSON file as they finish, so an interrupted run resumes.

    python benchmarks/unstructured.py                      # the full table in the doc
    python benchmarks/unstructured.py --models seed-cnn --sparsities 0.9 --criteria magnitude
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.utils.prune as torch_prune
from safetensors.torch import save_file

import slimkit
from slimkit.data import Splits
from slimkit.measure import evaluate_accuracy
from slimkit.prune import Masks, prunable_layers, weight_sparsity

BASELINE_RECIPES = {
    "seed-cnn": slimkit.TrainConfig(epochs=12, lr=2e-3, optimizer="adam"),
    "resnet20": slimkit.TrainConfig(epochs=3, lr=0.1, optimizer="sgd", weight_decay=5e-4),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="seed-cnn,resnet20")
    p.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98")
    p.add_argument("--criteria", default="magnitude,taylor,activation,torch-l1")
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument(
        "--finetune-limit",
        type=int,
        default=None,
        help="fine-tune on the first N training examples (all by default)",
    )
    p.add_argument("--workdir", default="runs/bench")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="docs/benchmarks/unstructured.md")
    return p.parse_args()


def baseline(name: str, splits: Splits, workdir: Path) -> torch.nn.Module:
    path = workdir / f"{name}.safetensors"
    if path.exists():
        return slimkit.load(path)
    model = slimkit.create_model(name)
    slimkit.train(
        model, splits, BASELINE_RECIPES[name], checkpoint=workdir / f"{name}.ckpt", resume=True
    )
    slimkit.save(
        model,
        path,
        provenance={
            "command": "benchmarks/unstructured.py",
            "config": BASELINE_RECIPES[name].to_dict(),
        },
    )
    return model


def torch_l1(
    model: torch.nn.Module, sparsity: float, splits: Splits, finetune: slimkit.TrainConfig
) -> torch.nn.Module:
    """The peer: PyTorch's own global L1 unstructured pruning, fine-tuned with its mask hooks."""
    model = copy.deepcopy(model)
    layers = prunable_layers(model)
    torch_prune.global_unstructured(
        [(m, "weight") for m in layers.values()],
        pruning_method=torch_prune.L1Unstructured,
        amount=sparsity,
    )
    slimkit.train(model, splits, finetune, progress=False)
    for module in layers.values():
        torch_prune.remove(module, "weight")
    return model.eval()


def slimkit_prune(
    model: torch.nn.Module,
    criterion: str,
    sparsity: float,
    splits: Splits,
    finetune: slimkit.TrainConfig,
) -> torch.nn.Module:
    cfg = slimkit.UnstructuredConfig(sparsity=sparsity, importance=criterion)
    return slimkit.prune(model, cfg, data=splits, train=finetune, progress=False)


def dense_bytes(model: torch.nn.Module, path: Path) -> int:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path.stat().st_size


def run_one(
    model: torch.nn.Module,
    criterion: str,
    sparsity: float,
    splits: Splits,
    finetune: slimkit.TrainConfig,
    scratch: Path,
) -> dict[str, Any]:
    start = time.perf_counter()
    if criterion == "torch-l1":
        pruned = torch_l1(model, sparsity, splits, finetune)
    else:
        pruned = slimkit_prune(model, criterion, sparsity, splits, finetune)
    seconds = time.perf_counter() - start
    Masks.from_zeros(prunable_layers(pruned))  # both paths must leave exact zeros behind
    slimkit.save(pruned, scratch)
    return {
        "test_accuracy": evaluate_accuracy(pruned, splits.test),
        "sparsity": weight_sparsity(pruned),
        "bytes": scratch.stat().st_size,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results_path = workdir / "unstructured.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    splits = slimkit.load_data("fashion-mnist")
    ft_splits = slimkit.load_data("fashion-mnist", limit_train=args.finetune_limit)
    finetune = slimkit.TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr)
    for name in args.models.split(","):
        model = baseline(name, splits, workdir)
        settings = {
            "finetune_epochs": args.finetune_epochs,
            "finetune_lr": args.finetune_lr,
            "finetune_examples": len(ft_splits.train),  # type: ignore[arg-type]
            "baseline": BASELINE_RECIPES[name].to_dict(),
        }
        saved = results.setdefault(f"{name}/settings", settings)
        if saved != settings and any(k.startswith(f"{name}/0") for k in results):
            print(
                f"{name}: keeping the saved results made with {saved}; delete {results_path} to redo"
            )
        key = f"{name}/dense"
        if key not in results:
            results[key] = {
                "test_accuracy": evaluate_accuracy(model, splits.test),
                "sparsity": 0.0,
                "bytes": dense_bytes(model, workdir / "dense.safetensors"),
            }
        for sparsity in map(float, args.sparsities.split(",")):
            for criterion in args.criteria.split(","):
                key = f"{name}/{sparsity}/{criterion}"
                if key in results:
                    continue
                torch.manual_seed(0)
                results[key] = run_one(
                    model,
                    criterion,
                    sparsity,
                    ft_splits,
                    finetune,
                    workdir
                    / f"scratch-{os.getpid()}.safetensors",  # one per process: workers may run side by side
                )
                print(key, results[key], flush=True)
                results_path.write_text(json.dumps(results, indent=1))
    results_path.write_text(json.dumps(results, indent=1))
    Path(args.out).write_text(render(results, args))
    print(f"wrote {args.out}")


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Unstructured pruning: slimkit criteria vs `torch.nn.utils.prune`",
        "",
        "Produced by:",
        "",
        "```",
        "python benchmarks/unstructured.py --models seed-cnn --threads 1",
        "python benchmarks/unstructured.py --models resnet20 --finetune-limit 5000 --threads 1",
        "python benchmarks/unstructured.py --threads 1   # renders both models from the saved results",
        "```",
        "",
        f"Machine: {platform.machine()}, {args.threads} thread(s), torch {torch.__version__}. "
        "Results accumulate in `runs/bench/unstructured.json` (an interrupted run resumes). "
        "Fashion-MNIST: 50,000 train / 10,000 validation / 10,000 test. Every row prunes the same "
        "trained baseline once (one-shot, global scope over all Conv/Linear weights) and fine-tunes "
        "it (Adam, cosine schedule; epochs, learning rate and number of training examples per model "
        "below) with pruned weights held at zero. `torch-l1` is "
        "`torch.nn.utils.prune.global_unstructured(..., L1Unstructured)` fine-tuned identically. "
        "Bytes are the slimkit artifact (sparse tensors stored as zlib-coded bitmask or index gaps "
        "plus fp32 values); the dense row is a plain fp32 safetensors file.",
        "",
        "| model | sparsity | criterion | test top-1 (%) | Δ vs dense (points) | bytes | × smaller |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {
        c: i for i, c in enumerate(["magnitude", "taylor", "activation", "random", "torch-l1"])
    }
    for name in args.models.split(","):
        dense = results.get(f"{name}/dense")
        if dense is None:
            continue
        header = lines.index(
            "| model | sparsity | criterion | test top-1 (%) | Δ vs dense (points) | bytes | × smaller |"
        )
        lines.insert(
            header - 1, f"- {name} settings: `{json.dumps(results.get(f'{name}/settings'))}`"
        )
        lines.append(
            f"| {name} | 0 | dense | {dense['test_accuracy']:.2f} | – | {dense['bytes']:,} | 1.0 |"
        )
        rows = [k.split("/") for k in results if k.startswith(f"{name}/") and k.count("/") == 2]
        for _, sparsity, criterion in sorted(
            rows, key=lambda r: (float(r[1]), order.get(r[2], 99))
        ):
            row = results[f"{name}/{sparsity}/{criterion}"]
            delta = row["test_accuracy"] - dense["test_accuracy"]
            lines.append(
                f"| {name} | {float(sparsity):.0%} | {criterion} | {row['test_accuracy']:.2f} | "
                f"{delta:+.2f} | {row['bytes']:,} | {dense['bytes'] / row['bytes']:.1f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
