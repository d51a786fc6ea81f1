"""Distillation benchmark on Fashion-MNIST: does a teacher help, and where does it not?

Three parts, each run over several seeds with the same TrainConfig (epochs, optimiser, learning
rate, schedule) for every variant of the part, so only the loss and the initialisation differ:

- ``a``: seed-cnn-slim trained alone (cross-entropy) vs distilled from a trained seed-cnn with
  logit KD, and with logit KD plus FitNets hints (layers paired automatically by spatial size).
- ``b``: resnet56 pruned once to 50% of its MACs (structured, group L2), then recovered with
  plain fine-tuning vs KD from the unpruned model.
- ``c``: resnet20 slimmed to width 0.5: warm start + KD vs scratch + KD vs scratch alone.

Every finished run is appended to ``<workdir>/distill.json`` at once and skipped when the
script is run again, so an interrupted run resumes. A part's settings (epochs, data size,
teacher file, ...) are saved with its results; running a part again with other settings is
refused (use another ``--workdir``). The Markdown doc is rendered from everything in the JSON.

    python benchmarks/distill.py --parts a --epochs 10
    python benchmarks/distill.py --parts b --teacher-b runs/bench-structured/resnet56/baseline.safetensors \\
        --limit-train 10000 --epochs 3
    python benchmarks/distill.py --parts b,c --limit-train 256 --limit-eval 256 --epochs 1 \\
        --seeds 0 --workdir runs/bench-distill-smoke --out runs/bench-distill-smoke/distill.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import slimkit
from slimkit.data import Splits
from slimkit.distill import reinitialise_
from slimkit.measure import count_params, evaluate_accuracy
from slimkit.models import arch_of


@dataclass(frozen=True)
class Part:
    title: str
    teacher: str
    student: str
    variants: tuple[str, ...]
    train: slimkit.TrainConfig
    reference: str  # the variant the others are compared with


PARTS = {
    "a": Part(
        "seed-cnn-slim from scratch: alone vs distilled from seed-cnn",
        "runs/bench/seed-cnn.safetensors",
        "seed-cnn-slim",
        ("alone", "kd", "kd+hint"),
        slimkit.TrainConfig(epochs=10, lr=2e-3, optimizer="adam"),
        "alone",
    ),
    "b": Part(
        "resnet56 pruned to 50% MACs: fine-tuning vs KD from the unpruned model",
        "runs/bench-structured/resnet56/baseline.safetensors",
        "resnet56 at 50% MACs (structured, l2)",
        ("ce", "kd"),
        slimkit.TrainConfig(epochs=3, lr=0.01, optimizer="sgd", weight_decay=5e-4),
        "ce",
    ),
    "c": Part(
        "resnet20 slimmed to width 0.5: warm start vs scratch, with and without KD",
        "runs/bench/resnet20.safetensors",
        "resnet20 at width 0.5",
        ("warm+kd", "scratch+kd", "scratch"),
        slimkit.TrainConfig(epochs=10, lr=0.1, optimizer="sgd", weight_decay=5e-4),
        "scratch",
    ),
}
VARIANT_NOTES = {
    "alone": "cross-entropy only",
    "kd": "logit KD",
    "kd+hint": "logit KD + FitNets hints (auto pairs)",
    "ce": "plain fine-tuning (cross-entropy)",
    "warm+kd": "most important channels kept, logit KD",
    "warm": "most important channels kept, cross-entropy only",
    "scratch+kd": "re-initialised, logit KD",
    "scratch": "re-initialised, cross-entropy only",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="a", help="comma-separated subset of a,b,c")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=None, help="override every part's epochs")
    p.add_argument("--lr", type=float, default=None, help="override every part's learning rate")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N images")
    p.add_argument("--limit-eval", type=int, default=None, help="validate/test on N images")
    p.add_argument("--variants", default=None, help="override the parts' variants (e.g. warm)")
    for name, part in PARTS.items():
        p.add_argument(f"--teacher-{name}", default=part.teacher, help=f"part {name}'s teacher")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--hint-weight", type=float, default=1.0)
    p.add_argument("--width", type=float, default=0.5, help="part c's width")
    p.add_argument("--target-macs", type=float, default=0.5, help="part b's MACs to keep")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default="runs/bench-distill")
    p.add_argument("--out", default="docs/benchmarks/distill.md")
    p.add_argument("--no-render", action="store_true", help="only run, do not write the doc")
    return p.parse_args(argv)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def part_settings(name: str, args: argparse.Namespace, splits: Splits) -> dict[str, Any]:
    part = PARTS[name]
    overrides = {"epochs": args.epochs, "lr": args.lr}
    train = {**part.train.to_dict(), **{k: v for k, v in overrides.items() if v is not None}}
    teacher = Path(getattr(args, f"teacher_{name}"))
    settings: dict[str, Any] = {
        "teacher": str(teacher),
        "teacher_sha256": sha256(teacher),
        "train": train,
        "data": splits.describe()["sizes"],
        "temperature": args.temperature,
        "alpha": args.alpha,
    }
    if name == "a":
        settings["hint_weight"] = args.hint_weight
    if name == "b":
        settings["target_macs"] = args.target_macs
    if name == "c":
        settings["width"] = args.width
    return settings


# -- the students ----------------------------------------------------------------------------


def student_a(teacher: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return slimkit.create_model("seed-cnn-slim", **arch_of(teacher)["kwargs"])


def student_b(
    teacher: nn.Module, settings: dict[str, Any], work: Path, example: torch.Tensor
) -> nn.Module:
    """The pruned model, made once (pruning is deterministic) and reloaded for every run."""
    path = work / "b-pruned.safetensors"
    if not path.exists():
        cfg = slimkit.StructuredConfig(target_macs=settings["target_macs"], importance="l2")
        slimkit.save(slimkit.prune(teacher, cfg, example_inputs=example, progress=False), path)
    return slimkit.load(path)


def student_c(
    teacher: nn.Module, settings: dict[str, Any], example: torch.Tensor, seed: int, variant: str
) -> nn.Module:
    model = slimkit.slim(teacher, settings["width"], example_inputs=example)
    if variant.startswith("scratch"):
        torch.manual_seed(seed)
        reinitialise_(model)
    return model


def make_student(
    name: str,
    variant: str,
    teacher: nn.Module,
    settings: dict[str, Any],
    work: Path,
    example: torch.Tensor,
    seed: int,
) -> nn.Module:
    if name == "a":
        return student_a(teacher, seed)
    if name == "b":
        return student_b(teacher, settings, work, example)
    return student_c(teacher, settings, example, seed, variant)


# -- one run ---------------------------------------------------------------------------------


def run_one(
    name: str,
    variant: str,
    teacher: nn.Module,
    splits: Splits,
    settings: dict[str, Any],
    work: Path,
    seed: int,
) -> dict[str, Any]:
    train_cfg = slimkit.TrainConfig(**{**settings["train"], "seed": seed})
    example = splits.test[0][0].unsqueeze(0)
    student = make_student(name, variant, teacher, settings, work, example, seed)
    start = time.perf_counter()
    if variant.endswith("kd") or variant == "kd+hint":
        cfg = slimkit.DistillConfig(
            temperature=settings["temperature"],
            alpha=settings["alpha"],
            hint_layers="auto" if variant == "kd+hint" else (),
            hint_weight=settings.get("hint_weight", 1.0),
            train=train_cfg,
        )
        slimkit.distill(student, teacher, splits, cfg, progress=False)
    else:
        torch.manual_seed(seed)
        slimkit.train(student, splits, train_cfg, progress=False)
    seconds = time.perf_counter() - start
    return {
        "test_accuracy": evaluate_accuracy(student, splits.test),
        "val_accuracy": evaluate_accuracy(student, splits.val),
        "macs": slimkit.count_macs(student, example),
        "params": count_params(student),
        "seconds": round(seconds, 1),
    }


def reference_rows(
    name: str, teacher: nn.Module, splits: Splits, settings: dict[str, Any], work: Path
) -> dict[str, dict[str, Any]]:
    """The teacher, and for b and c the smaller model before any training."""
    example = splits.test[0][0].unsqueeze(0)
    rows = {
        "teacher": {
            "test_accuracy": evaluate_accuracy(teacher, splits.test),
            "macs": slimkit.count_macs(teacher, example),
            "params": count_params(teacher),
        }
    }
    if name in ("b", "c"):
        row = "pruned, not recovered" if name == "b" else "slimmed (warm), not trained"
        small = make_student(name, "warm", teacher, settings, work, example, 0)
        rows[row] = {
            "test_accuracy": evaluate_accuracy(small, splits.test),
            "macs": slimkit.count_macs(small, example),
            "params": count_params(small),
        }
    return rows


# -- the loop --------------------------------------------------------------------------------


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(path: Path, results: dict[str, Any]) -> None:
    """Merge ``results`` into the file: another process may be running another part."""
    merged = {**load_results(path), **results}
    results.update(merged)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=1))
    tmp.replace(path)


def run_part(
    name: str,
    args: argparse.Namespace,
    splits: Splits,
    results: dict[str, Any],
    save: Callable[[], None],
) -> None:
    part = PARTS[name]
    work = Path(args.workdir)
    settings = part_settings(name, args, splits)
    saved = results.setdefault(f"{name}/settings", settings)
    if saved != settings:
        sys.exit(
            f"part {name}: {args.workdir} holds results made with other settings\n  saved: "
            f"{json.dumps(saved)}\n  now:   {json.dumps(settings)}\n"
            "use another --workdir, or delete that part's entries to redo it"
        )
    results[f"{name}/command"] = shlex.join(["python", *sys.argv])
    teacher = slimkit.load(settings["teacher"])
    if f"{name}/teacher" not in results:
        for row, values in reference_rows(name, teacher, splits, settings, work).items():
            results[f"{name}/{row}"] = values
        save()
    variants = args.variants.split(",") if args.variants else list(part.variants)
    for seed in map(int, args.seeds.split(",")):
        for variant in variants:
            key = f"{name}/{variant}/seed{seed}"
            if key in results:
                continue
            results[key] = run_one(name, variant, teacher, splits, settings, work, seed)
            print(key, results[key], flush=True)
            save()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "distill.json"
    results = load_results(results_path)
    splits = slimkit.load_data(
        "fashion-mnist", limit_train=args.limit_train, limit_eval=args.limit_eval
    )
    for name in args.parts.split(","):
        if name not in PARTS:
            sys.exit(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
        run_part(name, args, splits, results, lambda: save_results(results_path, results))
    if not args.no_render:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        notes = out.read_text().partition(NOTES)[1:] if out.exists() else ("", "")
        out.write_text(render(results, args) + "".join(notes))
        print(f"wrote {out}")


# -- the doc ---------------------------------------------------------------------------------

NOTES = "\n## Reading"  # hand-written notes from this heading on survive a re-render


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def render_part(name: str, results: dict[str, Any]) -> list[str]:
    part, settings = PARTS[name], results[f"{name}/settings"]
    lines = [
        f"## ({name}) {part.title}",
        "",
        f"Command: `{results.get(f'{name}/command', '?')}`",
        "",
        f"Settings: `{json.dumps(settings)}`",
        "",
        "| variant | what | test top-1 (%) mean ± std | Δ vs "
        f"{part.reference} (points) | runs | MACs | params | seconds per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ("teacher", "pruned, not recovered", "slimmed (warm), not trained"):
        values = results.get(f"{name}/{row}")
        if values:
            lines.append(
                f"| {row} | – | {values['test_accuracy']:.2f} | – | 1 | {values['macs']:,} | "
                f"{values['params']:,} | – |"
            )
    runs: dict[str, list[dict[str, Any]]] = {}
    for key, value in results.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == name and parts[2].startswith("seed"):
            runs.setdefault(parts[1], []).append(value)
    reference = [r["test_accuracy"] for r in runs.get(part.reference, [])]
    for variant, rows in runs.items():
        accs = [r["test_accuracy"] for r in rows]
        delta = (
            f"{statistics.mean(accs) - statistics.mean(reference):+.2f}"
            if reference and variant != part.reference
            else "–"
        )
        seconds = statistics.mean(r["seconds"] for r in rows)
        lines.append(
            f"| {variant} | {VARIANT_NOTES.get(variant, '')} | {summary(accs)} | {delta} | "
            f"{len(rows)} | {rows[0]['macs']:,} | {rows[0]['params']:,} | {seconds:.0f} |"
        )
    return [*lines, ""]


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Knowledge distillation and structure slimming",
        "",
        "Produced by `benchmarks/distill.py` (the exact command of each part is listed with it). "
        f"Machine: {platform.machine()}, {args.threads} thread(s), torch {torch.__version__}. "
        "Fashion-MNIST: 50,000 train / 10,000 validation / 10,000 test unless the settings say "
        "otherwise. Within a part every variant uses the same TrainConfig and the same seeds "
        "(the seed sets the student's initialisation, where it has a random one, and the data "
        "order); only the loss and the initialisation differ. Mean ± sample standard deviation "
        "over the seeds; test accuracy is measured once, after training. KD is Hinton's logit "
        "loss (`LogitKD`) with the temperature and alpha in the settings; hints are FitNets "
        "losses over the layers paired by `hint_layers='auto'`.",
        "",
    ]
    for name in PARTS:
        if f"{name}/settings" in results:
            lines += render_part(name, results)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
