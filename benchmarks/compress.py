"""compress benchmark: slimkit compress (each goal) vs the best single-technique peers.

For one trained model, in one process:

- ``slimkit compress`` with ``--max-drop`` and each goal (latency, size), run directories under
  ``--workdir`` (a finished run is reused, an interrupted one resumes, and one started with
  other options redoes only the stages they feed);
- peer 1: Torch-Pruning (``MetaPruner``, group L2, ratio bisected to 50% of the MACs) plus
  plain fine-tuning with as many epochs as compress's recovery, run as fp32 ONNX Runtime;
- peer 2: ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel, MinMax) on the fp32
  graph, calibrated on the batches slimkit's calibration reads.

Test accuracy (full test split), bytes on disk, latency at batch 1 and 64 interleaved (every
variant timed once per round, medians) at a fixed thread count, ratios against fp32 eager, and
the wall time of each compress run. Each run rewrites its model's section of the doc.

    python benchmarks/compress.py --artifact runs/bench/seed-cnn.safetensors
    python benchmarks/compress.py --artifact runs/bench-structured/resnet56/baseline.safetensors \\
        --limit-train 10000 --recover-epochs 3 --trials 8
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import slimkit
from slimkit.measure import count_params, cpu_info, evaluate_accuracy
from slimkit.quantize import OrtModule, export_fp32
from slimkit.quantize._calib import calibration_batches
from slimkit.report._report import plan_cut
from slimkit.runtime import RUNTIMES
from slimkit.search import CompressConfig, compress

sys.path.insert(0, str(Path(__file__).parent))
from quantize import _interleaved, _peer_ort
from structured import torch_pruning_at, torch_pruning_ratio

GOALS = ("latency", "size")
#: The knobs of CompressConfig that are training schedules (``recover_train``, ``qat_train``).
SCHEDULES = tuple(
    name for name, value in vars(CompressConfig()).items() if isinstance(value, slimkit.TrainConfig)
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--artifact", default="runs/bench/seed-cnn.safetensors")
    p.add_argument("--max-drop", type=float, default=0.5)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--recover-epochs", type=int, default=2)
    p.add_argument("--polish-epochs", type=int, default=0)
    p.add_argument("--polish-trials", type=int, default=2)
    p.add_argument("--margin-se", type=float, default=1.0)
    p.add_argument("--round-to", type=int, default=None, help="channel multiple (see compress)")
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument(
        "--goals", default=",".join(GOALS), help="comma-separated goals to run (latency,size)"
    )
    p.add_argument(
        "--goal-option",
        action="append",
        default=[],
        metavar="GOAL:KEY=VALUE",
        help="a CompressConfig knob for one goal only, e.g. size:round_to=8, or a setting of "
        "one of its training schedules, e.g. latency:recover_train.epochs=4 (repeatable)",
    )
    p.add_argument("--workdir", default="runs/bench-compress")
    p.add_argument("--out", default="docs/benchmarks/compress.md")
    args = p.parse_args(argv)
    args.goal_options = goal_options(args.goal_option)  # a typo fails now, not hours later
    return args


def run_compress(
    model: torch.nn.Module, splits: Any, goal: str, args: argparse.Namespace, tag: str
) -> dict[str, Any]:
    cfg = CompressConfig(
        max_drop=args.max_drop,
        goal=goal,
        trials=args.trials,
        recover_train=slimkit.TrainConfig(epochs=args.recover_epochs),
        polish_epochs=args.polish_epochs,
        polish_trials=args.polish_trials,
        margin_se=args.margin_se,
        round_to=args.round_to,
        latency_threads=args.threads,
    )
    cfg = with_options(cfg, args.goal_options.get(goal, {}))
    data_args = {"name": "fashion-mnist", "limit_train": args.limit_train}
    run_dir = Path(args.workdir) / f"{tag}-{goal}"
    return compress(model, splits, cfg, run_dir, resume=True, data_args=data_args)


def goal_options(specs: list[str]) -> dict[str, dict[str, Any]]:
    """``["size:round_to=8", ...]`` as ``{"size": {"round_to": 8}}`` (values parsed as Python
    literals, else kept as strings; unknown goals or knobs are errors). A key may name a
    setting of a training schedule: ``recover_train.epochs``."""
    options: dict[str, dict[str, Any]] = {}
    fields = set(CompressConfig.__dataclass_fields__)
    schedule_fields = set(slimkit.TrainConfig.__dataclass_fields__)
    for spec in specs:
        goal, _, assignment = spec.partition(":")
        key, _, value = assignment.partition("=")
        knob, _, setting = key.partition(".")
        if (
            goal not in GOALS
            or knob not in fields
            or not value
            or (setting and (knob not in SCHEDULES or setting not in schedule_fields))
        ):
            raise SystemExit(
                f"--goal-option {spec!r}: expected GOAL:KEY=VALUE with GOAL in {GOALS} "
                f"and KEY a CompressConfig field, or SCHEDULE.SETTING with SCHEDULE in {SCHEDULES}"
            )
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # a bare word: the shell ate the quotes of structure_cost='latency'
        options.setdefault(goal, {})[key] = parsed
    return options


def with_options(cfg: CompressConfig, options: dict[str, Any]) -> CompressConfig:
    """``cfg`` with :func:`goal_options`' knobs, ``recover_train.epochs`` set in its schedule."""
    changes = {k: v for k, v in options.items() if "." not in k}
    for key, value in options.items():
        if "." in key:
            knob, _, setting = key.partition(".")
            schedule = changes.get(knob, getattr(cfg, knob))
            changes[knob] = dataclasses.replace(schedule, **{setting: value})
    return dataclasses.replace(cfg, **changes)


def torch_pruning_peer(
    model: torch.nn.Module, splits: Any, args: argparse.Namespace
) -> torch.nn.Module:
    example = splits.example_input(1)
    pruned = torch_pruning_at(model, torch_pruning_ratio(model, 0.5, example), example)
    finetune = slimkit.TrainConfig(epochs=args.recover_epochs, lr=1e-3)
    slimkit.train(pruned, splits, finetune, progress=False)
    return pruned.eval()


def _ort_fp32(
    model: torch.nn.Module, x: torch.Tensor, path: Path, threads: int
) -> tuple[OrtModule, Path]:
    onnx = export_fp32(model, path, x)
    return OrtModule(onnx, threads), onnx


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = slimkit.load(args.artifact)
    arch = model.slimkit_spec["arch"]["name"]
    splits = slimkit.load_data("fashion-mnist", limit_train=args.limit_train)
    work = Path(tempfile.mkdtemp(prefix="slimkit-cbench-"))
    x1 = splits.example_input(1)

    goals = [g for g in args.goals.split(",") if g]
    if unknown := set(goals) - set(GOALS):
        raise SystemExit(f"--goals: unknown {sorted(unknown)}; choose from {GOALS}")
    summaries = {goal: run_compress(model, splits, goal, args, arch) for goal in goals}
    fp32_ort, fp32_onnx = _ort_fp32(model, x1, work / "fp32.onnx", args.threads)
    tp = torch_pruning_peer(model, splits, args)
    tp_ort, tp_onnx = _ort_fp32(tp, x1, work / "tp.onnx", args.threads)
    calib = calibration_batches(splits, model, batches=8, batch_size=64)
    peer_q = _peer_ort(fp32_onnx, work / "peer.onnx", calib)

    variants: dict[str, dict[str, Any]] = {
        "fp32 eager (original)": {"model": model, "bytes": Path(args.artifact).stat().st_size},
        "fp32 onnxruntime": {"model": fp32_ort, "bytes": fp32_onnx.stat().st_size},
        "Torch-Pruning 50% MACs + fine-tune (ort fp32)": {
            "model": tp_ort,
            "bytes": tp_onnx.stat().st_size,
        },
        "ort quantize_static (peer)": {
            "model": OrtModule(peer_q, args.threads),
            "bytes": peer_q.stat().st_size,
        },
    }
    for goal, s in summaries.items():
        files, backend = s["files"], s["result"].get("backend")
        runner = (
            RUNTIMES.get(backend).load(files["onnx"], args.threads)
            if "onnx" in files and backend in RUNTIMES.names()
            else slimkit.load(files["artifact"])
        )
        variants[f"slimkit compress --goal {goal} ({backend or 'eager'})"] = {
            "model": runner,
            "bytes": Path(files["artifact"]).stat().st_size,
            "wall_s": sum(st["seconds"] for st in s["stages"]),
            "plan": s["plan"],
        }
    rows = []
    for name, v in variants.items():
        print(f"accuracy: {name}", flush=True)
        rows.append(
            {
                "name": name,
                "test_accuracy": evaluate_accuracy(v["model"], splits.test),
                **{k: v[k] for k in ("bytes", "wall_s", "plan") if k in v},
            }
        )
    rows[2]["params"] = count_params(tp)
    with torch.no_grad():
        for label, x in (("b1", x1), ("b64", splits.example_input(64))):
            runners = {n: (lambda m=v["model"], x=x: m(x)) for n, v in variants.items()}
            for name, ms in _interleaved(runners, args.rounds).items():
                next(r for r in rows if r["name"] == name)[label] = ms
    section = render(rows, args, arch, summaries)
    write(Path(args.out), arch, section)
    Path(args.workdir, f"{arch}.json").write_text(json.dumps(rows, indent=1, default=str))
    print(section)
    return 0


def render(
    rows: list[dict[str, Any]], args: argparse.Namespace, arch: str, summaries: dict[str, Any]
) -> str:
    base = rows[0]
    cmd = " ".join(["python benchmarks/compress.py", *sys.argv[1:]])
    lines = [
        f"## {arch}",
        "",
        f"`{args.artifact}`; budget {args.max_drop} points of validation top-1; {args.trials} trials, "
        f"{args.recover_epochs} recovery epoch(s) (the Torch-Pruning peer gets as many fine-tune "
        f"epochs); {args.threads} thread(s); latency medians of {args.rounds} interleaved rounds; "
        f"{_machine()}, torch {torch.__version__}.",
        "",
        f"```\n{cmd}\n```",
        "",
        "| variant | test top-1 | Δ test | bytes | smaller | b1 ms | b64 ms | b64 speedup vs fp32 eager | compress wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        wall = f"{r['wall_s'] / 60:.1f} min" if "wall_s" in r else "–"
        lines.append(
            f"| {r['name']} | {r['test_accuracy']:.2f} | {r['test_accuracy'] - base['test_accuracy']:+.2f} | "
            f"{r['bytes']:,} | {base['bytes'] / r['bytes']:.1f}× | {r['b1']:.3f} | {r['b64']:.2f} | "
            f"{base['b64'] / r['b64']:.2f}× | {wall} |"
        )
    lines.append("")
    for goal, s in summaries.items():
        plan, c = s["plan"], s["config"]
        resolved = CompressConfig.from_dict(c)
        removed = plan.get("removed_blocks") or []
        blocks = (
            f"{len(removed)} residual block(s) removed ({', '.join(removed)}), " if removed else ""
        )
        epochs = resolved.recover_train.epochs
        polish = (
            f", then the best plans recovered again for {epochs + resolved.polish_epochs}"
            f" epochs (up to {resolved.polish_trials})"
            if resolved.polish_epochs
            else ""
        )
        lines.append(
            f"- `--goal {goal}` ({resolved.trials} trials of {epochs} recovery "
            f"epoch(s){polish}; channels in multiples of {resolved.channel_multiple}, at least "
            f"{resolved.channel_floor} per group) chose: {blocks}{plan_cut(plan)} (per-group "
            "ratios "
            f"{json.dumps(_channel_ratios(plan))}), sparsity "
            f"{plan['sparsity']:.0%}, precision {plan['precision']}; validation drop "
            f"{s['budget']['val_drop']:+.2f}, test drop {s['budget']['test_drop']:+.2f}."
        )
    return "\n".join(lines) + "\n"


def _machine() -> str:
    """The CPU and the int8 features its speedups depend on."""
    cpu = cpu_info()
    features = ", ".join(
        f"{k.upper()} {'yes' if cpu[k] else 'no'}" for k in ("avx512", "vnni", "amx")
    )
    return f"{cpu['name']} ({cpu['cores']} cores; {features}; {platform.machine()})"


def _channel_ratios(plan: dict[str, Any]) -> dict[str, float]:
    """The plan's non-zero channel ratios (removed blocks are listed on their own)."""
    blocks = set(plan.get("removed_blocks") or [])
    return {k: round(v, 2) for k, v in plan["ratios"].items() if v > 0 and k not in blocks}


HEADER = """# compress benchmark

`slimkit compress` against the best single-technique peers measured on the same model, one
section per model, each regenerated by the command recorded in it (`benchmarks/compress.py`).
"""


NOTES = re.compile(r"<!-- notes -->\n.*?<!-- end notes -->\n?", re.S)


def write(out: Path, arch: str, section: str) -> None:
    """Replace ``arch``'s section of ``out``, keeping its hand-written notes block."""
    text = out.read_text() if out.exists() else HEADER
    sections = re.split(r"(?m)^(?=## )", text)
    old = next((s for s in sections[1:] if s.startswith(f"## {arch}\n")), "")
    if notes := NOTES.search(old):
        section = section.rstrip() + "\n\n" + notes.group(0)
    mine = f"## {arch}\n"
    body = [section if s.startswith(mine) else s for s in sections[1:]]  # in place
    if not old:
        body.append(section)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(sections[0].rstrip() + "\n\n" + "\n".join(s.rstrip() + "\n" for s in body))


if __name__ == "__main__":
    raise SystemExit(main())
