"""Render a compress run directory as ``report.html`` (plots embedded) and ``report.md``.

Everything is read from the run directory (``state.json``, ``trials.json``,
``summary.json``), so ``slimkit report RUN_DIR`` regenerates the report at any time.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from .._io import atomic_path
from ..errors import SlimkitError
from ..measure._profile import PROFILE_ROWS
from ..search import RunDir, TrialRecord
from ._plots import (
    _blocks_plot,
    _layer_ms_plot,
    _metric,
    _quantization_plot,
    _sensitivity_plot,
    _stages_plot,
    _trials_plot,
    _widths_plot,
)


def _load(run_dir: Path) -> tuple[dict[str, Any], list[TrialRecord], dict[str, Any]]:
    """The run's state, its trial records (the search's, then the polished ones) and its
    summary; a run of an older layout is refused (:class:`slimkit.search.RunDir`)."""
    state_path, summary_path = run_dir / "state.json", run_dir / "summary.json"
    if not state_path.exists() or not summary_path.exists():
        raise SlimkitError(
            f"{run_dir} has no finished compress run (state.json and summary.json are needed); "
            "run `slimkit compress ... --out RUN_DIR --resume` to finish it"
        )
    state = RunDir.open(run_dir).state
    trials: list[TrialRecord] = []
    for name in ("trials.json", "polished.json"):
        if (run_dir / name).exists():
            trials += TrialRecord.read_list(run_dir / name)
    return state, trials, json.loads(summary_path.read_text())


def _table(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for key, label, fmt in PROFILE_ROWS:
        before, after = summary["baseline"].get(key), summary["result"].get(key)
        rows.append(
            (
                label,
                fmt.format(before) if before is not None else "–",
                fmt.format(after) if after is not None else "–",
            )
        )
    return rows


def _versus_plain_line(summary: dict[str, Any]) -> str:
    r = summary["ratios"]
    if "speedup_b64_vs_plain" not in r:
        return ""
    return (
        f" Against the original's fastest plain deployment: {r['speedup_b1_vs_plain']:.2f}× at "
        f"batch 1 ({r['plain_b1']}), {r['speedup_b64_vs_plain']:.2f}× at batch 64 "
        f"({r['plain_b64']})."
    )


def _deployment_lines(summary: dict[str, Any]) -> list[str]:
    """Which runtime and precision won, and what each alternative measured (batch 64)."""
    deployment = summary.get("deployment") or {}
    alternatives = deployment.get("alternatives") or []
    if not alternatives:
        return []
    lines = ["", f"Deployed: {deployment['precision']}. Alternatives timed on the same candidate:"]
    lines += [
        f"- {a['precision']} on {a['runtime']}: {a['ms_b64']:.2f} ms at batch 64 "
        f"({a['slower_than_chosen']:.2f}× the chosen)"
        + (
            f", {a['ms_b1']:.3f} ms at batch 1 ({a['slower_than_chosen_b1']:.2f}×)"
            if a.get("slower_than_chosen_b1")
            else ""
        )
        + f", drop {a['drop']:+.3g}"
        for a in alternatives
    ]
    return lines


def _markdown_parts(summary: dict[str, Any], trials: list[TrialRecord]) -> tuple[str, str]:
    """The report's Markdown in two parts: the outcome and the plan, then the trials and the
    stages (the HTML report puts its plots between them)."""
    r = summary["ratios"]
    name, _ = _metric(summary)
    budget = (
        f"**{summary['budget']['max_drop']} points** of validation top-1"
        if name == "top-1"
        else f"**{summary['budget']['max_drop']}** of validation `{name}`"
    )
    intro = [
        "# slimkit compress report",
        "",
        f"Goal: **{summary['goal']}**, budget: {budget}. Validation drop {summary['budget']['val_drop']:+.2f}, test drop "
        f"{summary['budget']['test_drop']:+.2f}. Batch-64 speedup {r['speedup_b64']:.2f}×, "
        f"{r['smaller']:.2f}× smaller, {r['macs']:.2f}× fewer MACs "
        f"(result on {summary['result']['backend']}, original fp32 eager PyTorch, "
        f"{summary['result']['threads']} thread(s)).{_versus_plain_line(summary)}",
        *_deployment_lines(summary),
        "",
        "| | original | compressed |",
        "|---|---:|---:|",
        *[f"| {a} | {b} | {c} |" for a, b, c in _table(summary)],
        "",
        f"Plan: {plan_cut(summary['plan'])} by structured pruning, then "
        f"sparsity {summary['plan']['sparsity']:.0%}, precision {summary['plan']['precision']}."
        + _removed_note(summary["plan"].get("removed_blocks") or []),
        *_recovery_lines(summary),
    ]
    lines = [
        "## Trials",
        "",
        f"| trial | MACs kept | weights kept | sparsity | precision | val {name} | drop | bytes "
        "| b64 ms |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    head = "\n".join(intro) + "\n"
    for t in trials:
        lines.append(
            f"| {t.number} | {t.structured.macs_fraction:.0%} | "
            f"{t.structured.params_fraction:.0%} | {t.sparsity:.0%} | "
            f"{t.precision} | {t.val_accuracy:.4g} | {t.drop:+.4g} | {t.bytes:,} | "
            f"{t.latency_ms_b64:.2f} |"
        )
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {s['name']} | {s['seconds']:.1f} |" for s in summary["stages"]]
    return head, "\n".join(lines) + "\n"


def plan_cut(plan: dict[str, Any]) -> str:
    """The plan's structured cut in words: the fraction of MACs, parameters or predicted
    latency it keeps."""
    if plan.get("params_keep") is not None:
        return f"keep {plan['params_keep']:.0%} of the parameters"
    if plan.get("latency_keep") is not None:
        macs = plan.get("macs_fraction")
        tail = "" if macs is None else f" ({macs:.0%} of the MACs)"
        return f"keep {plan['latency_keep']:.0%} of the predicted int8 latency{tail}"
    macs = plan.get("macs_fraction")
    asked = plan.get("macs_keep") or 1.0
    if macs is None or round(macs, 2) == round(asked, 2):
        return f"keep {macs if macs is not None else asked:.0%} of the MACs"
    return f"keep {macs:.0%} of the MACs (the search's knob asked for {asked:.0%})"


def _recovery_lines(summary: dict[str, Any]) -> list[str]:
    """How the trials recovered, and the measurement behind the choice."""
    recovery = summary.get("recovery")
    if not recovery:
        return []
    method = {"kd": "distillation from the original (KD)", "ce": "cross-entropy fine-tuning"}
    line = f"Recovery: {method.get(recovery['method'], recovery['method'])}"
    val = recovery.get("val")
    if not val:
        return ["", line + " (as configured)."]
    return [
        "",
        f"{line}, chosen by measurement: the cut to {recovery['macs_fraction']:.0%} of the MACs "
        f"recovered for {recovery['epochs']} epoch(s) scored {val['ce']:.4g} with "
        f"cross-entropy and {val['kd']:.4g} with KD on the validation split.",
    ]


def _removed_note(removed: list[str]) -> str:
    if not removed:
        return ""
    return f" The pruning removes {len(removed)} residual block(s) whole: {', '.join(removed)}."


def _inline(text: str) -> str:
    """Markdown's inline marks the report uses (``**bold**``, ```code```) as HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _html_table(rows: list[str]) -> str:
    """A Markdown table (header, alignment row, body) as an HTML ``<table>``."""
    header, rule, body = _cells(rows[0]), _cells(rows[1]), rows[2:]
    align = ["right" if r.endswith(":") else "left" for r in rule]
    head = "".join(
        f'<th class="{a}">{_inline(c)}</th>' for c, a in zip(header, align, strict=False)
    )
    trs = "".join(
        "<tr>"
        + "".join(
            f'<td class="{a}">{_inline(c)}</td>' for c, a in zip(_cells(row), align, strict=False)
        )
        + "</tr>"
        for row in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"


def _markdown_html(markdown: str) -> str:
    """The subset of Markdown the report writes (headings, paragraphs, bullets, tables)."""
    out: list[str] = []
    blocks: list[list[str]] = [[]]
    for line in markdown.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    for block in filter(None, blocks):
        if block[0].startswith("#"):
            level = len(block[0]) - len(block[0].lstrip("#"))
            out.append(f"<h{level}>{_inline(block[0][level:].strip())}</h{level}>")
            block = block[1:]
        if not block:
            continue
        if block[0].startswith("|"):
            out.append(_html_table(block))
            continue
        text = [line for line in block if not line.startswith("- ")]
        items = [line[2:] for line in block if line.startswith("- ")]
        if text:
            out.append(f"<p>{_inline(' '.join(text))}</p>")
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
    return "\n".join(out)


def _html(head: str, tail: str, images: dict[str, str]) -> str:
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>\n"
        for name, data in images.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slimkit compress report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0;font-size:14px}}
td,th{{border:1px solid #ccc;padding:4px 8px}}th{{background:#f3f3f3}}
.right{{text-align:right;font-variant-numeric:tabular-nums}}.left{{text-align:left}}
figure{{margin:1.5em 0}}img{{max-width:100%}}figcaption{{color:#555;font-size:13px}}
code{{background:#f3f3f3;padding:0 3px}}</style></head><body>
{_markdown_html(head)}
<h2>Plots</h2>
{figures}{_markdown_html(tail)}
</body></html>
"""


def write_report(run_dir: str | Path) -> dict[str, str]:
    """Write ``report.html`` and ``report.md`` for a finished compress run; returns their paths."""
    run_dir = Path(run_dir)
    state, trials, summary = _load(run_dir)
    summary = {**summary, "stages": summary.get("stages", [])}
    sensitivity = state["stages"].get("sensitivity", {}).get("output", {})
    curves = sensitivity.get("curves", [])
    plan = state["stages"].get("plan", {}).get("output", {})
    images = {
        "accuracy vs goal, every trial": _trials_plot(trials, summary),
        "sensitivity curves": _sensitivity_plot(curves),
    }
    if sensitivity.get("quantization"):  # runs without quantization measure none
        images["int8 sensitivity per layer"] = _quantization_plot(sensitivity["quantization"])
    if plan.get("layer_ms"):  # measured for the latency cost only
        images["int8 time per layer"] = _layer_ms_plot(
            plan["layer_ms"], plan.get("layer_ms_runtime")
        )
    images["per-layer width, sparsity and precision"] = _widths_plot(curves, summary)
    if plan.get("block_curves"):
        images["residual blocks removed alone"] = _blocks_plot(plan["block_curves"], summary)
    images["time per stage"] = _stages_plot(summary["stages"] or [{"name": "-", "seconds": 0}])
    head, tail = _markdown_parts(summary, trials)
    markdown = head + "\n" + tail
    paths = {"html": run_dir / "report.html", "markdown": run_dir / "report.md"}
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(markdown)
    with atomic_path(paths["html"]) as tmp:
        tmp.write_text(_html(head, tail, images))
    return {k: str(v) for k, v in paths.items()}
