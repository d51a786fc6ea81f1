"""``slimkit`` console script: argument parsing, dispatch and one-line error reporting."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from .._device import DEVICE_CHOICES
from .._version import __version__
from ..errors import AccuracyBudgetError, SlimkitError
from ..runtime import RUNTIMES
from ..train import AUGMENTS
from ._commands import COMMANDS
from ._compress import compress_parsers, interrupted_note
from ._distill import distill_parser, slim_parser
from ._quantize import quantize_parser

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3


def _add_common(parser: argparse.ArgumentParser, *, data: bool = True) -> None:
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    parser.add_argument("--json", action="store_true", help="print one JSON result on stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--trust-model-code",
        action="store_true",
        help="allow importing the user module (module:function) a model artifact names",
    )
    if data:
        parser.add_argument(
            "--data",
            default="fashion-mnist",
            help="fashion-mnist, mnist, folder:<path> or module:function",
        )
        parser.add_argument("--data-dir", default=None, help="directory of the IDX files")
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
        help="a training recipe (YAML: model, out, data, train: TrainConfig fields); flags "
        "given as well override it",
    )
    p.add_argument(
        "--model",
        default=None,
        help="seed-cnn, resnet20, torchvision:<name>, timm:<name> or package.module:function",
    )
    p.add_argument("--epochs", type=int, default=None, help="default 12")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128")
    p.add_argument(
        "--optimizer", default=None, choices=["adam", "adamw", "sgd"], help="default adam"
    )
    p.add_argument("--weight-decay", type=float, default=None, help="default 0")
    p.add_argument(
        "--augment",
        default=None,
        choices=AUGMENTS.names(),
        help="training-batch augmentation (default none); crop-flip: random crop of the image "
        "padded by 1/14 of its side (2 px at 28), and horizontal flips",
    )
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--out", default=None, help="artifact to write (.safetensors)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if present")
    _add_common(p)
    p.set_defaults(data=None)  # None: the recipe's data, else fashion-mnist


def _profile_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure accuracy, size, MACs and latency")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for latency")
    p.add_argument("--no-accuracy", action="store_true", help="skip accuracy (faster)")
    p.add_argument(
        "--backend",
        default="torch",
        choices=["torch", *RUNTIMES.names()],
        help="torch (eager), or a runtime running the artifact's .onnx graph (default: torch)",
    )
    _add_common(p)


def _prune_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="prune a trained artifact")
    p.add_argument("artifact", metavar="ARTIFACT")
    p.add_argument("--method", default="unstructured", choices=["unstructured", "structured"])
    p.add_argument(
        "--importance",
        default=None,
        choices=["magnitude", "taylor", "activation", "random", "l1", "l2", "bn-scale", "apoz"],
        help="default: magnitude (unstructured), l2 (structured)",
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument("--sparsity", type=float, help="fraction of weights to zero, in [0, 1)")
    target.add_argument(
        "--max-drop",
        type=float,
        help="accuracy budget in points: find the largest sparsity within it",
    )
    structured = p.add_argument_group("structured (--method structured)")
    structured.add_argument("--ratio", type=float, help="fraction of channels removed per group")
    structured.add_argument("--target-macs", type=float, help="fraction of MACs to keep")
    structured.add_argument(
        "--target-latency", type=float, help="fraction of this machine's latency to keep"
    )
    structured.add_argument("--round-to", type=int, default=1, help="keep widths multiples of N")
    structured.add_argument("--ignore", nargs="*", default=[], help="layers whose outputs stay")
    structured.add_argument(
        "--remove-blocks",
        nargs="*",
        default=[],
        help="residual blocks replaced by the identity (depth pruning), e.g. layer1.3",
    )
    p.add_argument("--scope", default=None, choices=["global", "layer"])
    p.add_argument("--exclude", nargs="*", default=[], help="layer names or patterns to keep")
    p.add_argument("--schedule", default="oneshot", choices=["oneshot", "agp"])
    p.add_argument("--agp-steps", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument(
        "--recover",
        default=None,
        choices=["kd", "ce"],
        help="fine-tuning loss: kd (distil the unpruned model; the default when fine-tuning) "
        "or ce (plain cross-entropy)",
    )
    p.add_argument("--max-trials", type=int, default=6, help="budget search: trials at most")
    p.add_argument("--max-sparsity", type=float, default=0.99, help="budget search: upper bound")
    p.add_argument(
        "--strategy",
        default="iterative",
        choices=["iterative", "bisect"],
        help="budget search: prune more from the last good model, or bisect from the dense one",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    _add_common(p)


def _graph_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("graph", help="print the groups of coupled channels of a model")
    p.add_argument("model", metavar="MODEL", help="a registered model name or an artifact")
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="print at most N groups")
    p.add_argument("--members", action="store_true", help="list every tensor each group touches")
    _add_common(p, data=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slimkit", description="Make PyTorch models smaller and faster, keeping accuracy."
    )
    parser.add_argument("--version", action="version", version=f"slimkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list the registered models")
    _add_common(models, data=False)
    _train_parser(sub)
    _profile_parser(sub)
    _prune_parser(sub)
    _graph_parser(sub)
    quantize_parser(sub, _add_common)
    distill_parser(sub, _add_common)
    slim_parser(sub, _add_common)
    compress_parsers(sub, _add_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 bad usage, 3 budget not met)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "trust_model_code", False):
        from ..models._sources import allow_model_code

        allow_model_code()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        note = interrupted_note(args) or "files are written whole, so none was left half-written"
        print(f"slimkit: interrupted; {note}", file=sys.stderr)
        return 130
    except (SlimkitError, ValueError) as err:
        if args.debug:
            traceback.print_exc()
        print(f"slimkit: error: {err}", file=sys.stderr)
        if isinstance(err, AccuracyBudgetError):
            return EXIT_BUDGET
        return EXIT_USAGE if isinstance(err, ValueError) else EXIT_ERROR
