"""The plots of a compress report, each a PNG embedded as base64 (matplotlib, optional)."""

from __future__ import annotations

import base64
import io
from typing import Any

from ..errors import MissingDependencyError
from ..measure import Budget
from ..search import TrialRecord


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
