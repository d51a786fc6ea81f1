"""``slimkit compress``, ``worker``, ``report`` and ``run``: the accuracy-budgeted pipeline."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from .. import export
from .._checks import check_int, check_number
from .._io import check_writable
from ..data import load_data
from ..errors import SlimkitError
from ..importance import GROUP
from ..search import (
    GOALS,
    RECOVERY,
    STALE_AFTER_S,
    CompressConfig,
    RunDir,
    backends,
    compress,
    run_worker,
)
from ._compress_text import (
    IMAGE_ONLY,
    TEXT_TASK,
    add_text_flags,
    cmd_compress_text,
    refuse_text_flags,
)
from ._guards import refuse_quantized
from ._output import add_output_flags, log, print_json, profile_table
from ._parser import field_default

AddCommon = Callable[[argparse.ArgumentParser], None]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str, flag: str = "--time-budget") -> float:
    """Seconds in ``90``, ``90s``, ``30m`` or ``2h``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{flag} must look like 90s, 30m or 2h, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _add_stale_after(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stale-after",
        default=None,
        metavar="DURATION",
        help="run a trial again when the process running it (on any host) has sent no "
        f"heartbeat for this long, e.g. 90s or 10m (default {STALE_AFTER_S / 60:g}m)",
    )


def stale_after(args: argparse.Namespace) -> float:
    """``--stale-after`` in seconds (the default without it)."""
    if args.stale_after is None:
        return STALE_AFTER_S
    seconds = parse_duration(args.stale_after, "--stale-after")
    if seconds <= 0:
        raise ValueError(f"--stale-after must be longer than 0 s, got {args.stale_after!r}")
    return seconds


def compress_parsers(sub: argparse._SubParsersAction, add_common: AddCommon) -> None:
    """Add ``compress``, ``worker`` and ``report`` to ``sub``."""
    p = sub.add_parser(
        "compress", help="smallest/fastest model within an accuracy budget (prune+KD+int8)"
    )
    p.add_argument(
        "artifact",
        metavar="ARTIFACT",
        help="the trained model (.safetensors), or with --task sentence-embedding a Hugging "
        "Face sentence-encoder directory",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=_default("max_drop"),
        help="the budget: points of validation top-1 the result may lose (or units of "
        "--metric) (default %(default)s)",
    )
    p.add_argument(
        "--goal",
        choices=GOALS,
        default=_default("goal"),
        help="what to minimise within the budget (default %(default)s)",
    )
    p.add_argument(
        "--backend",
        choices=backends(),
        default=_default("backend"),
        help="where the result runs: auto (time every installed runtime on every candidate, "
        "deploy the fastest within budget), a runtime, or torch (eager) (default %(default)s)",
    )
    p.add_argument(
        "--time-budget",
        default=None,
        metavar="DURATION",
        help="stop starting trials after this long, e.g. 30m or 2h (default: no limit)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=_default("trials"),
        help="candidate plans the search evaluates (default %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=_default("seed"), help="seeds the search (default %(default)s)"
    )
    p.add_argument(
        "--importance",
        default=_default("importance"),
        choices=GROUP.names(),
        help="structured pruning criterion (default %(default)s)",
    )
    p.add_argument(
        "--recover",
        choices=RECOVERY,
        default=_default("recover"),
        help="how trials recover a pruned model: kd (distil from the original), ce (plain "
        "fine-tuning), or auto (recover one candidate both ways first, keep KD only if it "
        "scores better) (default %(default)s)",
    )
    recovery, qat = _default("recover_train"), _default("qat_train")
    p.add_argument(
        "--recover-epochs",
        type=int,
        default=recovery.epochs,
        help="recovery epochs per trial (default %(default)s)",
    )
    p.add_argument(
        "--recover-lr",
        type=float,
        default=recovery.lr,
        help="peak learning rate of the recovery; quantization-aware training runs at a "
        "tenth of it (default %(default)g)",
    )
    p.add_argument(
        "--qat-epochs",
        type=int,
        default=qat.epochs,
        help="quantization-aware training epochs when plain int8 misses the budget "
        "(default %(default)s)",
    )
    p.add_argument(
        "--polish-epochs",
        type=int,
        default=_default("polish_epochs"),
        help="after the search, recover the best plans again for this many more epochs "
        "(default %(default)s: off)",
    )
    p.add_argument(
        "--polish-trials",
        type=int,
        default=_default("polish_trials"),
        help="how many plans to polish (default %(default)s)",
    )
    p.add_argument(
        "--margin-se",
        type=float,
        default=_default("margin_se"),
        help="a plan holds the budget if its validation drop plus this many standard errors "
        "does (0: the drop alone) (default %(default)s)",
    )
    p.add_argument("--no-quantize", action="store_true", help="prune only; keep fp32")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads every latency is measured with (default: torch's current setting)",
    )
    p.add_argument(
        "--round-to",
        type=int,
        default=None,
        help="channel counts multiple of this (default for --goal latency: the multiple the "
        "--backend runtimes' kernels want, the largest of them for auto; else 1)",
    )
    p.add_argument(
        "--min-channels",
        type=int,
        default=None,
        help="the fewest channels a group keeps (default: 16 for latency on int8, else 1)",
    )
    p.add_argument(
        "--no-remove-blocks",
        action="store_true",
        help="prune channels only; never remove whole residual blocks",
    )
    p.add_argument(
        "--structure-cost",
        choices=("macs", "params", "latency"),
        default=None,
        help="what the structured plan cuts a fraction of: macs, params, or latency (every "
        "probed cut profiled at batch 64 on the fastest runtime; int8 only) (default: params "
        "for --goal size, else macs)",
    )
    p.add_argument(
        "--metric",
        default=None,
        metavar="MODULE:FUNCTION",
        help="score models with FUNCTION(model, dataset) -> float instead of top-1 accuracy; "
        "--max-drop is then in its units (default: top-1)",
    )
    p.add_argument(
        "--lower-is-better", action="store_true", help="--metric is a loss or an error rate"
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL shared with workers (default: a journal file in RUN_DIR)",
    )
    _add_stale_after(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="run directory: stages, trials, the result, report.html and summary.json",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN_DIR; with changed options, redo only the stages they feed",
    )
    add_text_flags(p)
    add_common(p)
    p.set_defaults(image_only_defaults={dest: p.get_default(dest) for dest in IMAGE_ONLY})

    w = sub.add_parser("worker", help="join a compress run's search from another process")
    w.add_argument("run_dir", metavar="RUN_DIR", help="the run directory of a compress run")
    w.add_argument(
        "--storage",
        default=None,
        help="the run's Optuna storage URL (default: the one RUN_DIR names)",
    )
    _add_stale_after(w)
    w.add_argument(
        "--metric",
        default=None,
        metavar="MODULE:FUNCTION",
        help="the run's --metric: a worker imports the metric (or module:function --data) "
        "RUN_DIR names only if its own command line names it too",
    )
    w.add_argument(
        "--trust-run-code",
        action="store_true",
        help="import whatever module:function data, metric or model RUN_DIR names (anyone who "
        "can write RUN_DIR chooses the code this worker runs)",
    )
    add_common(w)

    run = sub.add_parser("run", help="run a compress recipe (YAML) with key=value overrides")
    run.add_argument("recipe", metavar="RECIPE", help="a compress recipe (YAML)")
    run.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="recipe values to replace, e.g. compress.trials=4 (default: none)",
    )
    run.add_argument("--resume", action="store_true", help="continue the recipe's run directory")
    add_output_flags(run)

    r = sub.add_parser("report", help="regenerate RUN_DIR/report.html and report.md")
    r.add_argument("run_dir", metavar="RUN_DIR", help="the run directory of a compress run")
    add_output_flags(r)


def _metric_arg(spec: str | None) -> Any:
    from ..measure import resolve_metric

    return resolve_metric(spec)


def check_threads(threads: int | None) -> None:
    """``--threads``: a positive count, or left out for torch's current setting."""
    if threads is not None and threads < 1:
        raise ValueError(
            f"--threads must be >= 1 (CPU threads for latency), got {threads}; leave it out to "
            "use torch's current setting"
        )


def refuse_input_in_run(artifact: str | Path, run_dir: str | Path) -> None:
    """The input is never overwritten: refuse an artifact inside the run directory (resolved,
    so a symlink or another spelling of the same path counts too), which compress writes."""
    source, run = Path(artifact).resolve(), Path(run_dir).resolve()
    if source.is_relative_to(run):
        raise ValueError(
            f"the input {artifact} lies inside the run directory {run_dir}, which compress "
            "writes into and would overwrite it: copy the input elsewhere or pass another --out"
        )


def config_from_args(args: argparse.Namespace) -> CompressConfig:
    check_threads(args.threads)
    check_int("--recover-epochs", args.recover_epochs, minimum=0)
    check_number("--recover-lr", args.recover_lr, positive=True)
    check_int("--qat-epochs", args.qat_epochs, minimum=0)
    recovery, qat = _default("recover_train"), _default("qat_train")
    return CompressConfig(
        max_drop=args.max_drop,
        goal=args.goal,
        backend=args.backend,
        trials=args.trials,
        time_budget_s=parse_duration(args.time_budget) if args.time_budget else None,
        seed=args.seed,
        importance=args.importance,
        recover=args.recover,
        recover_train=replace(recovery, epochs=args.recover_epochs, lr=args.recover_lr),
        qat_train=replace(qat, epochs=args.qat_epochs, lr=args.recover_lr / 10),
        polish_epochs=args.polish_epochs,
        polish_trials=args.polish_trials,
        margin_se=args.margin_se,
        quantize=not args.no_quantize,
        latency_threads=args.threads,
        round_to=args.round_to,
        min_channels=args.min_channels,
        remove_blocks=not args.no_remove_blocks,
        structure_cost=args.structure_cost,
        metric=_metric_arg(args.metric),
        lower_is_better=args.lower_is_better,
    )


def _default(name: str) -> Any:
    return field_default(CompressConfig, name)


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines on stderr, none under ``--quiet``."""
    return partial(log, args)


def finish(summary: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print_json(summary)
        return 0
    print(profile_table(["original", "compressed"], [summary["baseline"], summary["result"]]))
    r = summary["ratios"]
    metric = summary["budget"].get("metric", {}).get("name", "top-1")
    unit = "points" if metric == "top-1" else f"of {metric}"
    print(
        f"\n{r['speedup_b64']:.2f}× faster at batch 64 ({summary['plan']['precision']} vs fp32 "
        f"eager), {r['smaller']:.2f}× smaller; test drop {summary['budget']['test_drop']:+.2f} "
        f"{unit} (budget {summary['budget']['max_drop']} on validation)"
    )
    if "speedup_b64_vs_plain" in r:
        print(
            f"against the original's fastest plain deployment: {r['speedup_b1_vs_plain']:.2f}× "
            f"at batch 1 ({r['plain_b1']}), {r['speedup_b64_vs_plain']:.2f}× at batch 64 "
            f"({r['plain_b64']})"
        )
    print(f"report: {summary['files']['report']}")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    """Run (or resume) the compress pipeline on ARTIFACT into RUN_DIR."""
    if args.task == TEXT_TASK:
        return cmd_compress_text(args)
    refuse_text_flags(args)
    cfg = config_from_args(args)
    stale_after_s = stale_after(args)
    refuse_input_in_run(args.artifact, args.out)
    check_writable(args.out, directory=True)
    refuse_quantized(args.artifact, "compress")
    data_args = {
        "name": args.data,
        "data_dir": args.data_dir,
        "limit_train": args.limit_train,
        "limit_eval": args.limit_eval,
    }
    if args.image_size is not None:  # only when given: runs without it keep their data identity
        data_args["image_size"] = args.image_size
    model = export.load(args.artifact)
    splits = load_data(**data_args)
    summary = compress(
        model,
        splits,
        cfg,
        args.out,
        resume=args.resume,
        storage=args.storage,
        device=args.device,
        data_args=data_args,
        log=_say(args),
        source=args.artifact,
        stale_after_s=stale_after_s,
    )
    return finish(summary, args.json)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the compress pipeline a recipe file describes."""
    from ..search import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    refuse_input_in_run(recipe.model, recipe.out)
    check_writable(recipe.out, directory=True)
    refuse_quantized(recipe.model, "compress")
    model = export.load(recipe.model)
    summary = compress(
        model,
        load_data(**recipe.data),
        recipe.compress,
        recipe.out,
        resume=args.resume,
        storage=recipe.storage,
        device=recipe.device,
        data_args=recipe.data,
        log=_say(args),
        source=recipe.model,
    )
    return finish(summary, args.json)


def cmd_worker(args: argparse.Namespace) -> int:
    done = run_worker(
        args.run_dir,
        storage=args.storage,
        device=args.device,
        log=_say(args),
        allowed_code=[name for name in (args.data, args.metric) if name],
        trust_code=args.trust_run_code,
        stale_after_s=stale_after(args),
    )
    if args.json:
        print_json({"trials_completed": done})
    else:
        print(f"worker: {done} trial(s) completed")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    run = RunDir.open(args.run_dir)  # a missing or damaged state.json: one line naming it
    if run.state.get("config", {}).get("task") == TEXT_TASK:
        from ..text._deploy import write_text_report

        paths = write_text_report(args.run_dir)
    else:
        paths = write_report(args.run_dir)
    if args.json:
        print_json(paths)
    else:
        print(f"report: {paths.get('html', paths['markdown'])}")
    return 0


def interrupted_note(args: argparse.Namespace) -> str | None:
    """What Ctrl-C left of a ``compress``, ``run`` or ``worker`` command (None for others)."""
    if args.command == "worker":
        return (
            f"the trials this worker finished stay in the study of {args.run_dir}; start the "
            "worker again to rejoin the search"
        )
    if args.command not in ("compress", "run"):
        return None
    out = args.out if args.command == "compress" else _recipe_out(args)
    if out is None or not (Path(out) / "state.json").is_file():
        return "no run directory was started"
    finished = "candidates" if getattr(args, "task", None) == TEXT_TASK else "trials"
    return (
        f"{out} keeps the stages and {finished} it finished: run the same command with "
        "--resume to continue"
    )


def _recipe_out(args: argparse.Namespace) -> str | None:
    from ..search import load_recipe

    try:
        return load_recipe(args.recipe, args.overrides).out
    except (SlimkitError, ValueError, TypeError, OSError):
        return None


COMPRESS_COMMANDS = {
    "compress": cmd_compress,
    "worker": cmd_worker,
    "report": cmd_report,
    "run": cmd_run,
}
