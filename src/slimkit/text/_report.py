"""``report.md`` of a sentence-encoder compress run: what was kept, how close it stays to the
original, and how fast it runs next to the deployments a user would pick instead."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._io import atomic_write_text
from ._plan import AgreementBudget
from ._records import UNPRUNED

#: Latency rows: summary key → what it is.
ROWS = {
    "teacher_fp32_eager": "original, fp32 PyTorch eager",
    "teacher_fp32_ort": "original, fp32 ONNX Runtime",
    "teacher_int8_ort": "original, ONNX Runtime quantize_dynamic int8 (its defaults)",
    "teacher_fp32_ov": "original, fp32 OpenVINO",
    "teacher_int8_ov": "original, NNCF int8 on OpenVINO",
    "student_fp32_eager": "result, fp32 PyTorch eager (model/)",
    "student_fp32_ort": "result, fp32 ONNX Runtime",
    "student_int8_ort": "result, int8 ONNX Runtime (per-channel)",
    "student_fp32_ov": "result, fp32 OpenVINO",
    "student_int8_ov": "result, NNCF int8 on OpenVINO",
}
#: The int8 peers whose test agreement the summary holds.
INT8_PEERS = ("teacher_int8_ort", "teacher_int8_ov")


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _pruned_forms_within(summary: dict[str, Any]) -> list[str]:
    """``label form`` of every pruned candidate's form that held the budget."""
    budget = AgreementBudget(summary["budget"]["min_cosine"], summary["budget"]["min_overlap"])
    return [
        f"{record['label']} {form['form']}"
        for record in summary["candidates"]
        if record["label"] != UNPRUNED
        for form in record.get("forms", [])
        if budget.holds(SimpleNamespace(**form))  # type: ignore[arg-type]
    ]


def _what(summary: dict[str, Any]) -> str:
    chosen, budget = summary["chosen"], summary["budget"]
    if budget["met_by_pruned"]:
        return f"candidate {chosen['label']} as {chosen['form']}"
    within = _pruned_forms_within(summary)
    if not within:
        return (
            f"no pruned candidate held the budget; the unpruned encoder is kept as {chosen['form']}"
        )
    goal = summary.get("config", {}).get("goal", "the goal")
    return (
        f"the pruned forms that held the budget ({', '.join(within)}) cost more ({goal}) than "
        f"the unpruned encoder as {chosen['form']}, which is kept"
    )


def headline(summary: dict[str, Any]) -> str:
    """One paragraph: what was chosen and its speed-ups."""
    chosen, speed, budget = summary["chosen"], summary["speedup"], summary["budget"]
    what = _what(summary)
    overlap = "" if budget["min_overlap"] is None else f", top-10 ≥ {budget['min_overlap']}"
    test = chosen["test"]
    parts = [
        f"Budget: mean cosine ≥ {budget['min_cosine']}{overlap} on the validation sentences. "
        f"Chosen: {what} (validation cosine {chosen['validation']['mean_cosine']:.4f}; test "
        f"cosine {test['mean_cosine']:.4f}, top-10 overlap {test['top10_overlap']:.3f}).",
    ]
    for batch in ("b1", "b32"):
        parts.append(
            f"Batch {batch[1:]}: {speed['vs_fp32_eager'][batch]:.2f}× fp32 eager, "
            f"{speed['vs_best_peer'][batch]:.2f}× the fastest peer ({speed['best_peer'][batch]})."
        )
    return " ".join(parts)


def _latency_table(summary: dict[str, Any]) -> list[str]:
    latency, test, deployed = summary["latency_ms"], summary["test"], summary["deployed"]
    quality: dict[str, dict[str, float]] = {
        "teacher_fp32_eager": {"mean_cosine": 1.0, "top10_overlap": 1.0},  # the reference
        **{peer: test[peer] for peer in INT8_PEERS if peer in test},
        deployed: test["chosen"],
    }
    shipped = Path(summary["files"].get("deployed", "model.onnx")).name
    lines = [
        "| deployment | test mean cos | test top-10 | b1 ms | b32 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, times in latency.items():
        name = ROWS.get(key, key)
        if key == deployed:
            name = f"**{name}** ({shipped})"
        found = quality.get(key, {})
        lines.append(
            f"| {name} | {_number(found.get('mean_cosine'), '.4f')} | "
            f"{_number(found.get('top10_overlap'), '.3f')} | {times['b1']:.3f} | "
            f"{times['b32']:.3f} |"
        )
    return lines


def _candidate_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| # | candidate | params | form | val mean cos | val p5 cos | val top-10 | "
        "b32 × original fp32 ORT | bytes |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for record in summary["candidates"]:
        for form in record["forms"]:
            lines.append(
                f"| {record['index']} | {record['label']} | {record['params']:,} | "
                f"{form['form']} | {form['mean_cosine']:.4f} | {form['p5_cosine']:.4f} | "
                f"{form['top10_overlap']:.3f} | {form['relative_b32']:.2f} | "
                f"{form['bytes']:,} |"
            )
    return lines


def report_markdown(summary: dict[str, Any]) -> str:
    """The report's text."""
    machine, data = summary["machine"], summary["data"]
    cpu = machine["cpu"]
    flags = ", ".join(k for k in ("avx2", "avx512", "vnni", "amx") if cpu.get(k)) or "none"
    sizes = ", ".join(f"{k} {v}" for k, v in data.get("sizes", {}).items())
    checksum = f", corpus checksum {data['checksum']}" if data.get("checksum") else ""
    lines = [
        f"# slimkit compress: {summary['model']} (sentence embedding)",
        "",
        headline(summary),
        "",
        *_latency_table(summary),
        "",
        f"Machine: {cpu['name']} (int8 features: {flags}), {machine['threads']} thread(s); "
        f"{machine['seq_length']} tokens per sentence (padded), median of interleaved rounds.",
        f"Data: {data['name']} ({sizes}{checksum}).",
        "",
        "## Candidates (validation sentences; tried in this order, the unpruned first)",
        "",
        *_candidate_table(summary),
        "",
    ]
    return "\n".join(lines)


def write_markdown(run_dir: str | Path, summary: dict[str, Any]) -> str:
    """Write ``report.md`` into ``run_dir``; returns its path."""
    path = Path(run_dir) / "report.md"
    atomic_write_text(path, report_markdown(summary))
    return str(path)
