"""``slimkit compress ENCODER_DIR --task sentence-embedding``: a sentence encoder compressed
within an agreement budget (:func:`slimkit.text.compress_sentence_encoder`).

Every argument is checked before the encoder is read, and the encoder and the sentences are
read before any work: a bad one exits 2 with one line naming the problem and the fix.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from .._checks import check_number
from .._device import resolve_device
from .._io import check_writable
from ..data import DATASETS
from ..errors import DataError, ModelError
from ..models import check_hf_dir
from ..text import (
    DEFAULT_CANDIDATES,
    TEXT_GOALS,
    TEXT_IMPORTANCE,
    EncoderCompressConfig,
    EncoderPruneConfig,
    TextMeasureConfig,
)
from ..text._distill import BATCHINGS, PRECISIONS
from ..text._plan import parse_candidates
from ..text._records import TEXT_RUNTIMES
from ..text._runctx import check_backend
from ._output import log, print_json
from ._parser import field_default

TASKS = ("image-classification", "sentence-embedding")
TEXT_TASK = "sentence-embedding"
#: Options of the image pipeline only: refused with ``--task sentence-embedding`` when set to
#: anything but their default.
IMAGE_ONLY = (
    "max_drop",
    "time_budget",
    "trials",
    "importance",
    "recover",
    "recover_epochs",
    "recover_lr",
    "qat_epochs",
    "polish_epochs",
    "polish_trials",
    "margin_se",
    "min_channels",
    "no_remove_blocks",
    "structure_cost",
    "metric",
    "lower_is_better",
    "storage",
    "stale_after",
    "data_dir",
    "image_size",
    "trust_model_code",
)
#: Options of the sentence-encoder path only (None unless given).
TEXT_ONLY = (
    "min_cosine",
    "min_overlap",
    "candidates",
    "distill_steps",
    "max_seconds",
    "distill_lr",
    "distill_precision",
    "distill_batches",
    "text_importance",
)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def add_text_flags(p: argparse.ArgumentParser) -> None:
    """``--task`` and the sentence-encoder options of ``compress``."""
    p.add_argument(
        "--task",
        choices=TASKS,
        default=TASKS[0],
        help="image-classification (ARTIFACT is a .safetensors classifier) or "
        "sentence-embedding (ARTIFACT is a Hugging Face encoder directory; --data names "
        "sentences) (default %(default)s)",
    )
    g = p.add_argument_group(
        "sentence encoders (--task sentence-embedding)",
        "--data names the sentences: text:<corpus dir> (slimkit.data.build_corpus, make "
        "corpus), fortunes, fortunes:<dir> or a text file with one sentence per line. Shared "
        "with images: --goal (latency or size), --backend (auto, onnxruntime or openvino), "
        "--threads, --round-to (FFN widths), --seed "
        "(distillation's shuffling), --no-quantize, --out, --resume, --json.",
    )
    cfg, distill = EncoderCompressConfig, field_default(EncoderCompressConfig, "distill")
    g.add_argument(
        "--min-cosine",
        type=float,
        default=None,
        help="the budget: least mean cosine between the result's and the original's "
        f"embedding of a validation sentence, in (0, 1) (default {field_default(cfg, 'min_cosine')})",
    )
    g.add_argument(
        "--min-overlap",
        type=float,
        default=None,
        help="also the least top-10 neighbour overlap on validation, in (0, 1] (default: "
        "not checked)",
    )
    first = DEFAULT_CANDIDATES[0]
    g.add_argument(
        "--candidates",
        default=None,
        metavar="L:H:F,...",
        help="fractions of layers, heads and FFN neurons to remove, one triple per candidate, "
        "tried from the largest predicted saving (default: layers 1/2, 1/3 or 0 × heads and "
        f"FFN 1/2, 1/4 or 0: {len(DEFAULT_CANDIDATES)} candidates, e.g. "
        f"{first.layers:g}:{first.heads:g}:{first.ffn:g})",
    )
    g.add_argument(
        "--distill-steps",
        type=int,
        default=None,
        help=f"distillation steps per candidate, {distill.train.batch_size} sentences each "
        f"(default: {distill.train.epochs} epoch(s) over the training sentences)",
    )
    g.add_argument(
        "--max-seconds",
        default=None,
        metavar="DURATION",
        help="stop each candidate's distillation after this long, e.g. 90s or 10m "
        "(default: no limit)",
    )
    g.add_argument(
        "--distill-lr",
        type=float,
        default=None,
        help=f"peak learning rate of the distillation (default {distill.train.lr:g})",
    )
    g.add_argument(
        "--distill-precision",
        choices=PRECISIONS,
        default=None,
        help="the distillation's forward passes: fp32, or bf16 autocast (float32 weights; "
        "faster where the hardware multiplies bfloat16: CPUs with AMX or AVX-512 BF16, recent "
        f"GPUs) (default {distill.precision})",
    )
    g.add_argument(
        "--distill-batches",
        choices=BATCHINGS,
        default=None,
        help="how the distillation's batches are drawn: random, or by-length (sentences of "
        "similar lengths together, so little padding; the batches still in random order) "
        f"(default {BATCHINGS[distill.group_by_length]})",
    )
    g.add_argument(
        "--text-importance",
        choices=TEXT_IMPORTANCE.names(),
        default=None,
        help="how heads and neurons are ranked, one of %(choices)s (default "
        f"{field_default(EncoderPruneConfig, 'importance')})",
    )


def refuse_text_flags(args: argparse.Namespace) -> None:
    """Without ``--task sentence-embedding``, its options are mistakes."""
    given = [_flag(d) for d in TEXT_ONLY if getattr(args, d, None) is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to sentence encoders: "
            f"add --task {TEXT_TASK} (with an encoder directory and --data text:<corpus>)"
        )


def _refuse_image_flags(args: argparse.Namespace) -> None:
    defaults: dict[str, Any] = getattr(args, "image_only_defaults", {})
    given = [_flag(d) for d, value in defaults.items() if getattr(args, d, value) != value]
    if given:
        raise ValueError(
            f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to image classifiers "
            f"only, not to --task {TEXT_TASK}: drop {'it' if len(given) == 1 else 'them'} "
            "(the budget is --min-cosine)"
        )


def _candidates(args: argparse.Namespace) -> tuple[EncoderPruneConfig, ...]:
    importance = args.text_importance or field_default(EncoderPruneConfig, "importance")
    round_to = args.round_to if args.round_to is not None else 1
    base = EncoderPruneConfig(heads=0.0, ffn=0.0, importance=importance, round_to=round_to)
    if args.candidates is None:
        return tuple(
            replace(base, layers=c.layers, heads=c.heads, ffn=c.ffn) for c in DEFAULT_CANDIDATES
        )
    return parse_candidates(args.candidates, base)


def text_config(args: argparse.Namespace) -> EncoderCompressConfig:
    """The config the options describe (the same object the Python API takes).

    Raises:
        ValueError: for an image-only option, or a value out of range, naming the fix.
    """
    from ._compress import check_threads, parse_duration

    _refuse_image_flags(args)
    if args.goal not in TEXT_GOALS:
        raise ValueError(
            f"--goal {args.goal} is not available for sentence encoders: pass one of "
            f"{', '.join(TEXT_GOALS.names())}"
        )
    resolve_device(args.device)  # CUDA asked for on a machine without it: refused here
    if args.backend not in ("auto", *TEXT_RUNTIMES):
        raise ValueError(
            f"--backend {args.backend} is not available for sentence encoders: pass auto, "
            f"{' or '.join(TEXT_RUNTIMES)}"
        )
    check_threads(args.threads)
    distill = field_default(EncoderCompressConfig, "distill")
    schedule = replace(distill.train, seed=args.seed)
    if args.distill_lr is not None:
        check_number("--distill-lr", args.distill_lr, positive=True)
        schedule = replace(schedule, lr=args.distill_lr)
    if args.distill_precision is not None:
        distill = replace(distill, precision=args.distill_precision)
    if args.distill_batches is not None:
        distill = replace(distill, group_by_length=args.distill_batches == "by-length")
    max_seconds = None
    if args.max_seconds is not None:
        max_seconds = parse_duration(args.max_seconds, "--max-seconds")
    min_cosine = field_default(EncoderCompressConfig, "min_cosine")
    return EncoderCompressConfig(
        min_cosine=min_cosine if args.min_cosine is None else args.min_cosine,
        min_overlap=args.min_overlap,
        goal=args.goal,
        candidates=_candidates(args),
        distill=replace(distill, train=schedule),
        distill_steps=args.distill_steps,
        max_seconds=max_seconds,
        quantize=not args.no_quantize,
        backend=args.backend,
        measure=TextMeasureConfig(threads=args.threads),
    )


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The encoder and the sentences; a bad one is a ValueError naming the fix."""
    from ..data import load_text
    from ..models import load_hf
    from ..text._search import check_splits

    try:
        check_hf_dir(args.artifact)
    except ModelError as err:
        raise ValueError(
            f"{err} (with --task {TEXT_TASK}, ENCODER is a directory saved by "
            "save_pretrained or slimkit.models.save_hf)"
        ) from None
    source = args.data
    if source in DATASETS or source.startswith("folder:"):
        raise ValueError(
            f"--data {source} is image data; with --task {TEXT_TASK} pass sentences: "
            "--data text:<corpus dir>, fortunes or a text file"
        )
    options: dict[str, Any] = {"limit_train": args.limit_train}
    if args.limit_eval is not None:
        options["eval_size"] = args.limit_eval
    try:
        splits = load_text(source, **options)
    except DataError as err:
        raise ValueError(f"--data {source}: {err}") from None
    splits = check_splits(splits)
    try:
        encoder = load_hf(args.artifact)
    except ModelError as err:
        raise ValueError(f"{args.artifact}: {err}") from None
    return encoder, splits


def finish_text(summary: dict[str, Any], as_json: bool) -> int:
    """Print the result: the report's table and headline, or the summary as JSON."""
    from ..text._report import report_markdown

    if as_json:
        print_json(summary)
        return 0
    text = report_markdown(summary)
    print(text.split("\n## Candidates")[0].rstrip())
    print(f"\nreport: {summary['files']['report']}")
    return 0


def cmd_compress_text(args: argparse.Namespace) -> int:
    """``compress --task sentence-embedding``: check, load, run, print."""
    from ..text import compress_sentence_encoder
    from ..text._runctx import check_run_dir
    from ._compress import refuse_input_in_run

    cfg = text_config(args)
    check_backend(cfg)
    refuse_input_in_run(args.artifact, args.out)
    check_writable(args.out, directory=True)
    check_run_dir(args.out, args.resume)
    encoder, splits = _load(args)
    say: Callable[[str], None] = partial(log, args)
    summary = compress_sentence_encoder(
        encoder,
        splits,
        cfg,
        args.out,
        resume=args.resume,
        log=say,
        progress=not args.quiet,
        device=args.device,
    )
    return finish_text(summary, args.json)
