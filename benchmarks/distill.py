"""Distillation benchmark: does a strong teacher beat plain cross-entropy at the same epochs?

Every pair starts from the published reference models (``references/``, trained to
convergence, see ``docs/references.md``) and is taught by the reference resnet20:

- ``slim``: seed-cnn-slim from scratch, a slimmer architecture (1% of the teacher's MACs),
  trained with its own reference recipe (Adam, cosine decay, crop-flip);
- ``resnet8``: the CIFAR ResNet with one residual block per stage (a third of the teacher's
  MACs) from scratch, with the teacher's own recipe (SGD, cosine decay, crop-flip);
- ``mnv3``: torchvision's mobilenet_v3_small from scratch (the architecture of its reference
  artifact, fresh weights), a slimmer modern architecture, with its reference recipe (AdamW);
- ``pruned``: the reference seed-cnn pruned once to half its MACs (structured, group L2;
  ``--target-macs`` sets another fraction), then recovered;
- ``self``: the reference resnet20 pruned once to half its MACs (or ``--target-macs``),
  recovered from its own unpruned original.

Within a pair every arm uses the same TrainConfig, the same epochs and the same seeds (the
seed sets the student's initialisation where it has a random one, the data order and the
augmentations); only the loss differs. An arm is ``ce`` (cross-entropy only) or a distillation
loss written ``NAME[:key=value...]`` with ``NAME`` in ``kd`` (Hinton) or ``dkd`` (decoupled KD)
and keys ``T``, ``alpha``, ``beta``, ``hint`` (FitNets weight) and ``at`` (attention-transfer
weight), the last two over ``hint_layers='auto'``. The teacher sees the same augmented views as the student
and runs on the fastest engine that reproduces its logits (``teacher_runtime='auto'``).

Every finished run is appended to ``<workdir>/distill.json`` at once and skipped when the
script runs again, so an interrupted run resumes. A pair's settings are saved with its
results; running it again with other settings is refused (use another ``--workdir``).

    .venv/bin/python benchmarks/distill.py --pairs slim,pruned --seeds 0,1,2
    .venv/bin/python benchmarks/distill.py --pairs slim --epochs 1 --limit-train 512 \\
        --seeds 0 --workdir runs/bench-distill-smoke --out runs/bench-distill-smoke/distill.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import slimkit
from slimkit.data import Splits
from slimkit.export import read_spec
from slimkit.measure import count_params, cpu_info, evaluate_accuracy

TEACHER = "references/resnet20.safetensors"


@dataclass(frozen=True)
class Pair:
    title: str  # "{macs}" stands for the pruned pairs' fraction of MACs kept
    student: str  # a registry name (from scratch) or an artifact (pruned first)
    target_macs: float | None  # prune the student artifact to this fraction of its MACs
    train: slimkit.TrainConfig


PAIRS = {
    "slim": Pair(
        "resnet20 → seed-cnn-slim (a slimmer architecture, from scratch)",
        "seed-cnn-slim",
        None,
        slimkit.TrainConfig(epochs=40, lr=2e-3, optimizer="adam", augment="crop-flip"),
    ),
    "mnv3": Pair(
        "resnet20 → mobilenet_v3_small (a slimmer modern architecture, from scratch)",
        "references/mobilenet_v3_small.safetensors",
        None,
        slimkit.TrainConfig(
            epochs=15, lr=2e-3, optimizer="adamw", weight_decay=0.01, augment="crop-flip"
        ),
    ),
    "resnet8": Pair(
        "resnet20 → resnet8 (a slimmer architecture of the same family, from scratch)",
        "resnet8",
        None,
        slimkit.TrainConfig(
            epochs=10, lr=0.1, optimizer="sgd", weight_decay=5e-4, augment="crop-flip"
        ),
    ),
    "pruned": Pair(
        "resnet20 → seed-cnn pruned to {macs} of its MACs (recovery)",
        "references/seed-cnn.safetensors",
        0.5,
        slimkit.TrainConfig(epochs=10, lr=1e-3, optimizer="adam", augment="crop-flip"),
    ),
    "self": Pair(
        "resnet20 → resnet20 pruned to {macs} of its MACs (recovery from its own original)",
        "references/resnet20.safetensors",
        0.5,
        slimkit.TrainConfig(
            epochs=5, lr=0.01, optimizer="sgd", weight_decay=5e-4, augment="crop-flip"
        ),
    ),
}
ARM_KEYS = {
    "T": "temperature",
    "alpha": "alpha",
    "beta": "beta",
    "hint": "hint_weight",
    "at": "attention_weight",
}
FEATURE_KEYS = ("hint_weight", "attention_weight")
LOSS_NOTES = {"ce": "cross-entropy only", "kd": "Hinton's logit KD", "dkd": "decoupled KD"}


def parse_arm(spec: str) -> dict[str, Any] | None:
    """``ce`` → None; ``kd:T=4:alpha=0.9`` → DistillConfig keyword arguments."""
    name, *pairs = spec.split(":")
    if name == "ce" and not pairs:
        return None
    if name not in ("kd", "dkd"):
        sys.exit(f"arm {spec!r}: the loss must be ce, kd or dkd")
    kwargs: dict[str, Any] = {"logit_loss": name}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in ARM_KEYS:
            sys.exit(f"arm {spec!r}: unknown key {key!r}; use {', '.join(ARM_KEYS)}")
        kwargs[ARM_KEYS[key]] = float(value)
    if any(key in kwargs for key in FEATURE_KEYS):
        kwargs = {"hint_weight": 0.0, **kwargs, "hint_layers": "auto"}
    slimkit.DistillConfig(**kwargs)  # validate before hours of training
    return kwargs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", default="slim,pruned", help=f"subset of {','.join(PAIRS)}")
    p.add_argument("--arms", default="ce,kd:T=4:alpha=0.9", help="comma-separated arms")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=None, help="override every pair's epochs")
    p.add_argument("--teacher", default=TEACHER)
    p.add_argument(
        "--target-macs", type=float, default=None, help="override the pruned pairs' MACs fraction"
    )
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N images")
    p.add_argument("--limit-eval", type=int, default=None, help="validate/test on N images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--device", default="cpu", choices=("auto", "cpu", "cuda"), help="where students train"
    )
    p.add_argument("--workdir", default="runs/bench-distill")
    p.add_argument("--out", default="docs/benchmarks/distill.md")
    p.add_argument("--no-render", action="store_true", help="only run, do not write the doc")
    return p.parse_args(argv)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pair_settings(name: str, args: argparse.Namespace, splits: Splits) -> dict[str, Any]:
    pair = PAIRS[name]
    train = pair.train.to_dict()
    if args.epochs is not None:
        train["epochs"] = args.epochs
    settings: dict[str, Any] = {
        "teacher": args.teacher,
        "teacher_sha256": sha256(Path(args.teacher)),
        "student": pair.student,
        "train": train,
        "data": splits.describe()["sizes"],
    }
    if pair.target_macs is not None:
        settings["student_sha256"] = sha256(Path(pair.student))
        settings["target_macs"] = args.target_macs or pair.target_macs
    return settings


def make_student(name: str, settings: dict[str, Any], work: Path, seed: int) -> nn.Module:
    """A fresh student: seeded from scratch, or the pruned reference (pruned once, reloaded).

    From scratch, ``pair.student`` is a registry name or an artifact whose architecture (not
    its weights) is rebuilt.
    """
    pair = PAIRS[name]
    if pair.target_macs is None:
        torch.manual_seed(seed)
        if pair.student.endswith(".safetensors"):
            arch = read_spec(pair.student)["arch"]
            return slimkit.create_model(arch["name"], **arch["kwargs"])
        return slimkit.create_model(pair.student)
    target = settings["target_macs"]
    path = work / f"{name}-pruned-{target:g}.safetensors"
    if not path.exists():
        original = slimkit.load(pair.student)
        cfg = slimkit.StructuredConfig(target_macs=target, importance="l2")
        example = torch.zeros(1, 1, 28, 28)
        slimkit.save(slimkit.prune(original, cfg, example_inputs=example, progress=False), path)
    return slimkit.load(path)


def run_one(
    name: str,
    arm: str,
    teacher: nn.Module,
    splits: Splits,
    settings: dict[str, Any],
    work: Path,
    seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    train_cfg = slimkit.TrainConfig(**{**settings["train"], "seed": seed})
    student = make_student(name, settings, work, seed)
    kwargs = parse_arm(arm)
    start = time.perf_counter()
    if kwargs is None:
        torch.manual_seed(seed)
        slimkit.train(student, splits, train_cfg, progress=False, device=device)
    else:
        cfg = slimkit.DistillConfig(**kwargs, train=train_cfg)
        slimkit.distill(student, teacher, splits, cfg, progress=False, device=device)
    seconds = round(time.perf_counter() - start, 1)
    student.cpu()
    return {
        "test_accuracy": evaluate_accuracy(student, splits.test),
        "val_accuracy": evaluate_accuracy(student, splits.val),
        "seconds": seconds,
        "device": _device_name(device),
    }


def _device_name(device: str) -> str:
    """``cpu``, or the GPU's name: where a run's seconds were spent."""
    resolved = "cuda" if device == "auto" and torch.cuda.is_available() else device
    return torch.cuda.get_device_name() if resolved == "cuda" else "cpu"


def describe_model(model: nn.Module, splits: Splits) -> dict[str, Any]:
    example = splits.test[0][0].unsqueeze(0)
    return {
        "test_accuracy": evaluate_accuracy(model, splits.test),
        "macs": slimkit.count_macs(model, example),
        "params": count_params(model),
    }


# -- the loop --------------------------------------------------------------------------------


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(path: Path, results: dict[str, Any]) -> None:
    """Merge ``results`` into the file: another process may be running another pair."""
    merged = {**load_results(path), **results}
    results.update(merged)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=1))
    tmp.replace(path)


def run_pair(name: str, args: argparse.Namespace, splits: Splits, results_path: Path) -> None:
    results = load_results(results_path)
    work = Path(args.workdir)
    settings = pair_settings(name, args, splits)
    saved = results.setdefault(f"{name}/settings", settings)
    if saved != settings:
        sys.exit(
            f"pair {name}: {args.workdir} holds results made with other settings\n  saved: "
            f"{json.dumps(saved)}\n  now:   {json.dumps(settings)}\n"
            "use another --workdir, or delete that pair's entries to redo it"
        )
    save_results(results_path, {f"{name}/command": shlex.join(["python", *sys.argv])})
    teacher = slimkit.load(settings["teacher"]).eval()
    if f"{name}/teacher" not in results:
        results[f"{name}/teacher"] = describe_model(teacher, splits)
        results[f"{name}/student"] = describe_model(make_student(name, settings, work, 0), splits)
        save_results(results_path, results)
    for seed in map(int, args.seeds.split(",")):
        for arm in args.arms.split(","):
            key = f"{name}/{arm}/seed{seed}"
            if key in load_results(results_path):
                continue
            value = run_one(name, arm, teacher, splits, settings, work, seed, args.device)
            print(key, value, flush=True)
            save_results(results_path, {key: value})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for arm in args.arms.split(","):
        parse_arm(arm)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "distill.json"
    splits = slimkit.load_data(
        "fashion-mnist", limit_train=args.limit_train, limit_eval=args.limit_eval
    )
    for name in args.pairs.split(","):
        if name not in PAIRS:
            sys.exit(f"unknown pair {name!r}; choose from {', '.join(PAIRS)}")
        run_pair(name, args, splits, results_path)
    if not args.no_render:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        notes = out.read_text().partition(NOTES)[1:] if out.exists() else ("", "")
        out.write_text(render(load_results(results_path), args) + "".join(notes))
        print(f"wrote {out}")


# -- the doc ---------------------------------------------------------------------------------

NOTES = "\n## Reading"  # hand-written notes from this heading on survive a re-render
MIN_GAIN = 0.3  # points: the gain the distillation issue asks of KD over cross-entropy


def arm_note(arm: str) -> str:
    kwargs = parse_arm(arm)
    if kwargs is None:
        return LOSS_NOTES["ce"]
    cfg = slimkit.DistillConfig(**kwargs)
    extra = f", β = {cfg.beta:g}" if cfg.logit_loss == "dkd" else ""
    if cfg.uses_features:
        extra += f", FitNets × {cfg.hint_weight:g}, attention transfer × {cfg.attention_weight:g}"
    return f"{LOSS_NOTES[cfg.logit_loss]}, T = {cfg.temperature:g}, α = {cfg.alpha:g}{extra}"


def verdict(arm: list[float], ce: list[float]) -> tuple[str, str]:
    """(pooled standard deviation, whether the arm beats CE by ≥ 0.3 points and the pooled std)."""
    if len(arm) < 2 or len(ce) < 2:
        return "–", "–"
    pooled = math.sqrt((statistics.variance(arm) + statistics.variance(ce)) / 2)
    gain = statistics.mean(arm) - statistics.mean(ce)
    return f"{pooled:.2f}", "yes" if gain >= MIN_GAIN and gain > pooled else "no"


def pair_title(name: str, settings: dict[str, Any]) -> str:
    """The pair's heading, with the fraction of MACs its pruned student keeps."""
    return PAIRS[name].title.format(macs=f"{settings.get('target_macs', 0):.0%}")


def render_pair(name: str, results: dict[str, Any]) -> list[str]:
    settings = results[f"{name}/settings"]
    teacher, student = results[f"{name}/teacher"], results[f"{name}/student"]
    start = "untrained" if PAIRS[name].target_macs is None else "pruned, not recovered"
    lines = [
        f"## ({name}) {pair_title(name, settings)}",
        "",
        f"Command: `{results.get(f'{name}/command', '?')}`",
        "",
        f"Settings: `{json.dumps(settings)}`",
        "",
        f"Teacher `{settings['teacher']}`: {teacher['test_accuracy']:.2f}% test top-1, "
        f"{teacher['macs']:,} MACs, {teacher['params']:,} parameters. Student "
        f"({start}): {student['test_accuracy']:.2f}%, {student['macs']:,} MACs, "
        f"{student['params']:,} parameters.",
        "",
        "| arm | loss | test top-1 (%) mean ± std | per seed | Δ vs ce (points) | pooled std "
        f"| ≥ {MIN_GAIN} and > pooled std | seconds per run |",
        "|---|---|---|---|---:|---:|---|---:|",
    ]
    runs: dict[str, list[dict[str, Any]]] = {}
    for key, value in results.items():
        parts = key.rsplit("/", 2)
        if len(parts) == 3 and parts[0] == name and parts[2].startswith("seed"):
            runs.setdefault(parts[1], []).append(value)
    ce = [r["test_accuracy"] for r in runs.get("ce", [])]
    for arm, rows in runs.items():
        accs = [r["test_accuracy"] for r in rows]
        mean = f"{statistics.mean(accs):.2f}" + (
            f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        )
        if arm == "ce" or not ce:
            delta, pooled, passes = "–", "–", "–"
        else:
            delta = f"{statistics.mean(accs) - statistics.mean(ce):+.2f}"
            pooled, passes = verdict(accs, ce)
        seconds = statistics.mean(r["seconds"] for r in rows)
        devices = sorted({r.get("device", "cpu") for r in rows} - {"cpu"})
        where = f" ({', '.join(devices)})" if devices else ""
        per_seed = " / ".join(f"{a:.2f}" for a in accs)
        lines.append(
            f"| {arm} | {arm_note(arm)} | {mean} | {per_seed} | {delta} | {pooled} | {passes} "
            f"| {seconds:.0f}{where} |"
        )
    return [*lines, ""]


def machine() -> str:
    cpu = cpu_info()
    features = ", ".join(f"{k.upper()} {'yes' if cpu[k] else 'no'}" for k in ("avx512", "vnni"))
    return f"{cpu['name']} ({cpu['cores']} cores, {platform.machine()}; {features})"


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Knowledge distillation against plain cross-entropy",
        "",
        "Produced by `benchmarks/distill.py` (each pair's exact command is listed with it). "
        f"Machine: {machine()}, {args.threads} thread(s) per run, torch {torch.__version__}. "
        "Teachers and students start from the reference models of "
        "[`docs/references.md`](../references.md) (trained to convergence; recipes in "
        "`recipes/references/`). Fashion-MNIST: 50,000 train / 10,000 validation / 10,000 "
        "test unless the settings say otherwise; test accuracy is measured once, after "
        "training. Within a pair every arm uses the same TrainConfig, epochs and seeds; only "
        "the loss differs. Mean ± sample standard deviation over the seeds; the pooled "
        "standard deviation is that of the two arms compared.",
        "",
    ]
    for name in PAIRS:
        if f"{name}/settings" in results:
            lines += render_pair(name, results)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
