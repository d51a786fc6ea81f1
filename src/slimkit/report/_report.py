"""Render a compress run directory as ``report.html`` (plots embedded) and ``report.md``.

Everything is read from the run directory (``state.json``, ``trials.json``,
``summary.json``), so ``slimkit report RUN_DIR`` regenerates the report at any time.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

from .._io import atomic_path
from ..errors import MissingDependencyError, SlimkitError
from ..measure._profile import PROFILE_ROWS
from ..search import Budget, RunDir, TrialRecord


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError(
            "reports draw with matplotlib: pip install matplotlib"
        ) from err
    return plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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


def _pareto(
    points: list[tuple[float, float]], lower_is_better: bool = False
) -> list[tuple[float, float]]:
    """Points (goal, score) not beaten on both: lower goal and a better score."""
    sign = -1.0 if lower_is_better else 1.0
    front, best = [], float("-inf")
    for goal, score in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if sign * score > best:
            front.append((goal, score))
            best = sign * score
    return front


def _metric(summary: dict[str, Any]) -> tuple[str, bool]:
    """The budget's metric name (``top-1`` by default) and whether lower is better."""
    metric = summary["budget"].get("metric") or {}
    return str(metric.get("name", "top-1")), bool(metric.get("lower_is_better", False))


GOAL_AXIS = {
    "latency": ("latency_ms_b64", "latency at batch 64 (ms)"),
    "size": ("bytes", "bytes on disk"),
    "macs": ("macs", "MACs"),
}


def _budget(summary: dict[str, Any]) -> Budget:
    """The run's budget, whose verdict colours the trials as the search judged them."""
    return Budget(max_drop=summary["budget"]["max_drop"], margin_se=summary["budget"]["margin_se"])


def _trials_plot(trials: list[TrialRecord], summary: dict[str, Any]) -> str:
    plt = _pyplot()
    key, label = GOAL_AXIS[summary["goal"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    base = summary["baseline"]
    name, lower = _metric(summary)
    budget = _budget(summary)
    floor = base["val_accuracy"] + (budget.max_drop if lower else -budget.max_drop)
    points = [(float(getattr(t, key)), float(t.val_accuracy)) for t in trials]
    verdicts = [budget.holds(t.drop) for t in trials]  # one measurement each: no error bar
    for legend, colour, within in (
        ("trials within budget", "tab:green", True),
        ("trials over budget", "tab:red", False),
    ):
        chosen = [p for p, v in zip(points, verdicts, strict=True) if v == within]
        if chosen:
            ax.scatter([p[0] for p in chosen], [p[1] for p in chosen], c=colour, s=28, label=legend)
    for trial, (x, y) in zip(trials, points, strict=True):
        ax.annotate(
            str(trial.number),
            (x, y),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    if points:
        front = _pareto(points, lower)
        ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
    result = summary["result"]
    _original_mark(ax, [p[0] for p in points] + [float(result[key])], base, key, summary["goal"])
    ax.scatter(
        [result[key]],
        [result["val_accuracy"]],
        marker="D",
        s=60,
        facecolors="none",
        edgecolors="k",
        label="chosen",
    )
    bound = f"{'+' if lower else '−'}{budget.max_drop} {'pts' if name == 'top-1' else ''}".strip()
    ax.axhline(floor, color="tab:red", lw=1, ls=":", label=f"budget ({bound})")
    ax.set_xlabel(label)
    ax.set_ylabel("validation top-1 (%)" if name == "top-1" else f"validation {name}")
    ax.legend(fontsize=8)
    ax.set_title("every trial: " + ("accuracy" if name == "top-1" else name) + " vs goal")
    return _png(fig)


GOAL_UNIT = {"latency": "ms", "size": "bytes", "macs": "MACs"}


def _trial_limits(xs: list[float]) -> tuple[float, float] | None:
    """The log x-axis limits the trials (and the chosen result) span, padded by a quarter;
    None without a positive value to span."""
    positive = [x for x in xs if x > 0]
    if not positive:
        return None
    return min(positive) / 1.25, max(positive) * 1.25


def _plain_log_ticks(ax: Any, low: float, high: float) -> None:
    """Plain numbers on the log x-axis ("0.8", not "8×10⁻¹"); the minor ticks are labelled
    too while the axis spans less than about a decade and a half."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    narrow = low > 0 and high / low < 30
    ax.xaxis.set_minor_formatter(plain if narrow else NullFormatter())


def _original_mark(ax: Any, xs: list[float], base: dict[str, Any], key: str, goal: str) -> None:
    """Mark the original on the trials' log axis without letting it set the axis.

    The original's eager time (or size) can lie decades away from the trials; plotted as a
    point it would squeeze them into a corner. The axis spans the trials; the original is a
    star when it falls inside, else a line at its score ending in an arrow at the axis edge
    that gives its value.
    """
    ax.set_xscale("log")
    x, y = float(base[key]), float(base["val_accuracy"])
    limits = _trial_limits(xs)
    if limits is None or limits[0] <= x <= limits[1]:
        _plain_log_ticks(ax, min(limits[0], x) if limits else x, max(limits[1], x) if limits else x)
        ax.scatter([x], [y], marker="*", s=160, c="tab:blue", label="original", zorder=3)
        return
    _plain_log_ticks(ax, *limits)
    ax.set_xlim(*limits)
    right = x > limits[1]
    ax.axhline(y, color="tab:blue", lw=1, ls="-.", label="original (off the axis)")
    value = f"{x:.3g} {GOAL_UNIT.get(goal, '')}".strip()
    ax.annotate(
        f"original: {value} →" if right else f"← original: {value}",
        xy=(1.0 if right else 0.0, y),
        xycoords=("axes fraction", "data"),
        # Right: in the margin beside the axis, clear of the trials; left: inside, clear of
        # the tick labels.
        xytext=(4 if right else 6, 0 if right else 6),
        textcoords="offset points",
        ha="left",
        va="center" if right else "bottom",
        annotation_clip=False,
        fontsize=8,
        color="tab:blue",
    )


def _quantization_plot(layers: list[dict[str, Any]]) -> str:
    """Each layer quantized to int8 alone: its validation drop, the worst at the top."""
    plt = _pyplot()
    ranked = sorted(layers, key=lambda r: -float(r["accuracy_drop"]))
    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.26 * len(ranked) + 1.2)))
    drops = [float(r["accuracy_drop"]) for r in ranked]
    colors = ["tab:red" if d > 0 else "tab:gray" for d in drops]
    ax.barh([str(r["layer"]) for r in ranked], drops, color=colors)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("validation drop (points; negative: a gain)")
    ax.set_title(f"int8 sensitivity: each of {len(ranked)} layers quantized alone")
    return _png(fig)


def _layer_ms_plot(layer_ms: dict[str, float], runtime: str | None) -> str:
    """The per-layer int8 time the plan measured for the latency cost, in network order."""
    plt = _pyplot()
    names, ms = list(layer_ms), [float(v) for v in layer_ms.values()]
    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.26 * len(names) + 1.2)))
    ax.barh(names, ms, color="tab:purple")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("ms at batch 64")
    where = f" on {runtime}" if runtime else ""
    ax.set_title(f"int8 time per layer{where} ({sum(ms):.2f} ms in all)")
    return _png(fig)


def _sensitivity_plot(curves: list[dict[str, Any]]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ranked = sorted(curves, key=lambda c: -max(c["drops"] or [0]))
    for c in ranked[:12]:
        ax.plot([0, *c["ratios"]], [0, *c["drops"]], marker="o", lw=1, label=c["key"])
    ax.set_xlabel("fraction of the group's channels removed (no fine-tuning)")
    ax.set_ylabel("validation drop (points)")
    ax.set_title(
        f"sensitivity of channel groups ({min(len(curves), 12)} most sensitive of {len(curves)})"
    )
    if curves:
        ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def _in_removed_block(curves: list[dict[str, Any]], plan: dict[str, Any]) -> list[bool]:
    removed = plan.get("removed_blocks") or []
    return [any(c["key"].startswith(block + ".") for block in removed) for c in curves]


def _kept_widths(curves: list[dict[str, Any]], plan: dict[str, Any]) -> list[int]:
    """Width each group's layer keeps: 0 inside a removed block, the pruned model's width when
    the summary has it, else the planned ratio applied (summaries before widths were kept)."""
    widths = plan.get("widths") or {}
    kept = []
    for c, removed in zip(curves, _in_removed_block(curves, plan), strict=True):
        if removed:
            kept.append(0)
        elif c["key"] in widths:
            kept.append(int(widths[c["key"]]))
        else:
            kept.append(round(c["channels"] * (1 - plan["ratios"].get(c["key"], 0.0))))
    return kept


def _widths_plot(curves: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    plt = _pyplot()
    plan = summary["plan"]
    names = [c["key"] for c in curves]
    before = [c["channels"] for c in curves]
    after = _kept_widths(curves, plan)
    in_removed = _in_removed_block(curves, plan)
    gone = [b if r else 0 for b, r in zip(before, in_removed, strict=True)]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.28 * len(names)), 4.2))
    xs = range(len(names))
    ax.bar(xs, before, color="lightgray", label="original width")
    if any(gone):
        ax.bar(xs, gone, color="mistyrose", hatch="//", label="removed with its block")
    ax.bar(xs, after, color="tab:blue", label="kept" if plan.get("widths") else "kept (planned)")
    ax.set_xticks(list(xs), names, rotation=90, fontsize=7)
    ax.set_ylabel("channels")
    ax.set_title(
        f"per-layer width; then sparsity {plan['sparsity']:.0%}, precision {plan['precision']}"
    )
    ax.legend(fontsize=8)
    return _png(fig)


def _blocks_plot(blocks: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    plt = _pyplot()
    removed = set(summary["plan"].get("removed_blocks") or [])
    fig, ax = plt.subplots(figsize=(max(6.4, 0.3 * len(blocks)), 3.6))
    xs = range(len(blocks))
    colors = ["tab:red" if b["key"] in removed else "tab:gray" for b in blocks]
    ax.bar(xs, [b["drops"][0] for b in blocks], color=colors)
    ax.set_xticks(list(xs), [b["key"] for b in blocks], rotation=90, fontsize=7)
    ax.set_ylabel("validation drop (points)")
    ax.set_title(
        f"residual blocks removed alone, no fine-tuning (red: the {len(removed)} the plan removes)"
    )
    return _png(fig)


def _stages_plot(stages: list[dict[str, Any]]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    ax.barh([s["name"] for s in stages], [s["seconds"] for s in stages], color="tab:gray")
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("time per stage")
    return _png(fig)


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
