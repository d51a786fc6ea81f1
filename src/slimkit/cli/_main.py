"""``slimkit`` console script: argument parsing, dispatch and one-line error reporting."""

from __future__ import annotations

import argparse
import inspect
import sys
import traceback
from collections.abc import Sequence

from .._device import DEVICE_CHOICES
from .._version import __version__
from ..errors import AccuracyBudgetError, SlimkitError
from ..importance import ELEMENTWISE, GROUP
from ..prune import AGP, StructuredConfig, UnstructuredConfig, search_sparsity
from ..prune._budget import STRATEGIES
from ..runtime import RUNTIMES
from ..train import AUGMENTS, TrainConfig
from ..train._config import OPTIMIZERS
from ._commands import CLI_TRAIN, COMMANDS, PRUNE_TRAIN
from ._compress import compress_parsers, interrupted_note
from ._distill import distill_parser, slim_parser
from ._examples import add_examples
from ._output import (
    EXIT_BUDGET,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_output_flags,
    print_error_json,
)
from ._parser import SlimkitParser, add_model_args, field_default, model_sources
from ._quantize import quantize_parser

__all__ = ["EXIT_BUDGET", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

#: The data a command reads unless told otherwise.
DEFAULT_DATA = "fashion-mnist"
_NONE = "(default: none)"


def _add_common(
    parser: argparse.ArgumentParser, *, data: bool = True, data_default: str | None = DEFAULT_DATA
) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help=f"where to compute: {', '.join(DEVICE_CHOICES)} or cuda:N (default %(default)s)",
    )
    add_output_flags(parser)
    parser.add_argument(
        "--trust-model-code",
        action="store_true",
        help="allow importing the user module (module:function) a model artifact names",
    )
    if data:
        default = (
            f"(default {data_default})"
            if data_default
            else f"(default: the recipe's data, else {DEFAULT_DATA})"
        )
        parser.add_argument(
            "--data",
            default=data_default,
            help=f"fashion-mnist, mnist, folder:<path> (an ImageFolder tree with train/ and "
            f"test/) or package.module:function {default}",
        )
        parser.add_argument(
            "--data-dir",
            default=None,
            metavar="DIR",
            help="directory of the IDX files (default: $SLIMKIT_DATA_DIR, else the Debian "
            "package's directory)",
        )
        parser.add_argument(
            "--image-size",
            type=int,
            default=None,
            metavar="N",
            help="folder: data: resize (shorter side) and center-crop every image to N×N, the "
            "model's native resolution (default: the first training image's size)",
        )
        parser.add_argument("--limit-train", type=int, default=None, help=argparse.SUPPRESS)
        parser.add_argument("--limit-eval", type=int, default=None, help=argparse.SUPPRESS)


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a registered model (from flags or a recipe file)")
    p.add_argument(
        "--recipe",
        default=None,
        metavar="FILE",
        help="a training recipe (YAML: model, model_args, out, data, train: TrainConfig "
        f"fields); flags given as well override it {_NONE}",
    )
    p.add_argument(
        "--model",
        default=None,
        help=f"{model_sources()}; required unless --recipe names it",
    )
    add_model_args(p, "none, or the recipe's model_args, which these extend")
    cli, recipe = CLI_TRAIN, "or the recipe's"
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"passes over the training data (default {cli.epochs}, {recipe})",
    )
    p.add_argument(
        "--lr", type=float, default=None, help=f"peak learning rate (default {cli.lr:g}, {recipe})"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"examples per step (default {cli.batch_size}, {recipe})",
    )
    p.add_argument(
        "--optimizer",
        default=None,
        choices=OPTIMIZERS,
        help=f"one of %(choices)s; sgd with Nesterov momentum 0.9 (default {cli.optimizer}, "
        f"{recipe})",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help=f"L2 penalty, decoupled for adamw (default {cli.weight_decay:g}, {recipe})",
    )
    p.add_argument(
        "--augment",
        default=None,
        choices=AUGMENTS.names(),
        help="training-batch augmentation, one of %(choices)s; crop-flip: random crop of the "
        f"image padded by 1/14 of its side (2 px at 28), and horizontal flips (default "
        f"{cli.augment}, {recipe})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"seeds shuffling, dropout and augmentation (default {cli.seed}, {recipe})",
    )
    p.add_argument(
        "--out",
        default=None,
        help="artifact to write (.safetensors); required unless --recipe names it",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT.ckpt if present (without it, a fresh run deletes OUT.ckpt)",
    )
    _add_common(p, data_default=None)  # None: the recipe's data, else fashion-mnist


def _profile_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure accuracy, size, MACs and latency")
    p.add_argument(
        "artifacts",
        nargs="+",
        metavar="ARTIFACT",
        help="artifacts to measure (.safetensors); several print side by side, two with their "
        "ratio",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for latency (default: torch's current setting)",
    )
    p.add_argument("--no-accuracy", action="store_true", help="skip accuracy (faster)")
    p.add_argument(
        "--backend",
        default="torch",
        choices=["torch", *RUNTIMES.names()],
        help="torch (eager), or a runtime running the artifact's .onnx graph: one of "
        "%(choices)s (default %(default)s)",
    )
    _add_common(p)


def _search_default(name: str) -> object:
    """A default of the budget search, read from :func:`search_sparsity`'s signature."""
    return inspect.signature(search_sparsity).parameters[name].default


def _prune_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="prune a trained artifact")
    p.add_argument("artifact", metavar="ARTIFACT", help="the trained float artifact to prune")
    p.add_argument(
        "--method",
        default="unstructured",
        choices=["unstructured", "structured"],
        help="one of %(choices)s: zero single weights, or remove whole channels and blocks "
        "(default %(default)s)",
    )
    elementwise, group = ELEMENTWISE.names(), GROUP.names()
    p.add_argument(
        "--importance",
        default=None,
        choices=[*elementwise, *(name for name in group if name not in elementwise)],
        help=f"criterion for unstructured: {', '.join(elementwise)}; for structured: "
        f"{', '.join(group)} (default: {field_default(UnstructuredConfig, 'importance')} for "
        f"unstructured, {field_default(StructuredConfig, 'importance')} for structured)",
    )
    _prune_targets(p)
    p.add_argument(
        "--scope",
        default=None,
        choices=["global", "layer"],
        help="one of %(choices)s: one threshold across all layers, or the same fraction in "
        "each (default: global for unstructured, layer for structured)",
    )
    p.add_argument(
        "--exclude", nargs="*", default=[], help=f"layer names or patterns to keep {_NONE}"
    )
    p.add_argument(
        "--schedule",
        default="oneshot",
        choices=["oneshot", "agp"],
        help="one of %(choices)s: prune at once, or along AGP's cubic ramp in --agp-steps "
        "steps with fine-tuning between them (default %(default)s)",
    )
    p.add_argument(
        "--agp-steps",
        type=int,
        default=field_default(AGP, "steps"),
        help="pruning steps of --schedule agp (default %(default)s)",
    )
    _prune_recovery(p)
    p.add_argument(
        "--max-trials",
        type=int,
        default=_search_default("max_trials"),
        help="budget search: trials at most (default %(default)s)",
    )
    p.add_argument(
        "--max-sparsity",
        type=float,
        default=_search_default("max_sparsity"),
        help="budget search: upper bound (default %(default)s)",
    )
    p.add_argument(
        "--strategy",
        default=_search_default("strategy"),
        choices=STRATEGIES,
        help="budget search, one of %(choices)s: prune more from the last good model, or "
        "bisect from the dense one (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=field_default(TrainConfig, "seed"),
        help="seeds fine-tuning (default %(default)s)",
    )
    p.add_argument("--out", required=True, help="artifact to write (.safetensors)")
    _add_common(p)


def _prune_targets(p: argparse.ArgumentParser) -> None:
    """How much to prune: a sparsity or a budget (unstructured), a ratio or target (structured)."""
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--sparsity",
        type=float,
        help="fraction of weights to zero, in [0, 1); unstructured needs it or --max-drop",
    )
    target.add_argument(
        "--max-drop",
        type=float,
        help="accuracy budget in validation points: find the largest sparsity within it",
    )
    structured = p.add_argument_group(
        "structured (--method structured)",
        "Exactly one of --ratio, --target-macs and --target-latency.",
    )
    structured.add_argument("--ratio", type=float, help="fraction of channels removed per group")
    structured.add_argument("--target-macs", type=float, help="fraction of MACs to keep")
    structured.add_argument(
        "--target-latency", type=float, help="fraction of this machine's latency to keep"
    )
    structured.add_argument(
        "--round-to",
        type=int,
        default=field_default(StructuredConfig, "round_to"),
        metavar="N",
        help="keep widths multiples of N (default %(default)s)",
    )
    structured.add_argument(
        "--ignore", nargs="*", default=[], help=f"layers whose outputs stay {_NONE}"
    )
    structured.add_argument(
        "--remove-blocks",
        nargs="*",
        default=[],
        help=f"residual blocks replaced by the identity (depth pruning), e.g. layer1.3 {_NONE}",
    )


def _prune_recovery(p: argparse.ArgumentParser) -> None:
    """Fine-tuning after pruning."""
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=PRUNE_TRAIN.epochs,
        help="fine-tuning epochs after pruning, 0 for none (default %(default)s)",
    )
    p.add_argument(
        "--finetune-lr",
        type=float,
        default=PRUNE_TRAIN.lr,
        help="peak learning rate of fine-tuning (default %(default)s)",
    )
    p.add_argument(
        "--recover",
        default=None,
        choices=["kd", "ce"],
        help="fine-tuning loss, one of %(choices)s: kd distils the unpruned model, ce is plain "
        "cross-entropy (default kd)",
    )


def _graph_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("graph", help="print the groups of coupled channels of a model")
    p.add_argument(
        "model",
        metavar="MODEL",
        help=f"an artifact, or a model to build: {model_sources()}",
    )
    built = "of a model built by name; an artifact has its own"
    p.add_argument(
        "--in-channels",
        type=int,
        default=1,
        help=f"input channels {built} (default %(default)s)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=28,
        help=f"input side in pixels {built} (default %(default)s)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=10,
        help=f"classes {built} (default %(default)s)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="print at most N groups (default: all of them)",
    )
    p.add_argument("--members", action="store_true", help="list every tensor each group touches")
    add_model_args(p, "none; an artifact has its own")
    _add_common(p, data=False)


def build_parser() -> argparse.ArgumentParser:
    parser = SlimkitParser(
        prog="slimkit", description="Make PyTorch models smaller and faster, keeping accuracy."
    )
    parser.add_argument("--version", action="version", version=f"slimkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser(
        "models",
        help="list the model sources: registered names, torchvision:<name>, timm:<name> and "
        "package.module:function",
    )
    _add_common(models, data=False)
    _train_parser(sub)
    _profile_parser(sub)
    _prune_parser(sub)
    _graph_parser(sub)
    quantize_parser(sub, _add_common)
    distill_parser(sub, _add_common)
    slim_parser(sub, _add_common)
    compress_parsers(sub, _add_common)
    add_examples(parser, sub.choices)
    return parser


def exit_code(err: Exception) -> int:
    """The exit code of a command that failed with ``err`` (the one place that decides it)."""
    if isinstance(err, AccuracyBudgetError):
        return EXIT_BUDGET
    return EXIT_USAGE if isinstance(err, ValueError) else EXIT_ERROR


def _failed(
    args: argparse.Namespace, kind: str, message: str, code: int, *, error: bool = True
) -> int:
    """One line on stderr; under ``--json`` the same failure as JSON on stdout too."""
    print(f"slimkit: {'error: ' if error else ''}{message}", file=sys.stderr)
    if getattr(args, "json", False):
        print_error_json(kind, message, code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 bad usage, 3 budget not met,
    130 interrupted). Under ``--json`` a failure also prints
    ``{"error": {"type", "message", "exit_code"}}`` on stdout."""
    args = build_parser().parse_args(argv)
    if getattr(args, "trust_model_code", False):
        from ..models._sources import allow_model_code

        allow_model_code()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        note = interrupted_note(args) or "files are written whole, so none was left half-written"
        return _failed(
            args, "KeyboardInterrupt", f"interrupted; {note}", EXIT_INTERRUPTED, error=False
        )
    except (SlimkitError, ValueError) as err:
        if args.debug:
            traceback.print_exc()
        return _failed(args, type(err).__name__, str(err), exit_code(err))
