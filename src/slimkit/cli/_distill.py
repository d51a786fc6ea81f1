"""``slimkit distill`` and ``slimkit slim``: build a DistillConfig from the flags and call the API."""

from __future__ import annotations

import argparse
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import export
from .._attrs import PRUNE_REPORT_ATTR
from .._device import resolve_device
from .._io import check_writable, refuse_overwrite
from ..data import Splits, load_data
from ..distill import AUTO, INITS, LOGIT_LOSSES, DistillConfig, distill, slim
from ..distill._config import HintLayers
from ..errors import DataError
from ..importance import GROUP
from ..measure import count_macs, count_params, evaluate_accuracy
from ..models import arch_of, create_model
from ..runtime import RUNTIMES
from ..train import AUGMENTS, TrainConfig
from ..train._config import OPTIMIZERS
from ._guards import refuse_quantized
from ._output import print_json
from ._parser import add_model_args, model_args_of, model_sources, refuse_model_args

AddCommon = Callable[[argparse.ArgumentParser], None]


def _add_kd_options(p: argparse.ArgumentParser, *, epochs: int, lr: float, flag: str) -> None:
    p.add_argument(
        flag, type=int, default=epochs, dest="epochs", help=f"training epochs (default {epochs})"
    )
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    _add_train_options(p)
    kd = DistillConfig()
    p.add_argument(
        "--temperature",
        type=float,
        default=kd.temperature,
        help="softmax temperature T > 0 (default %(default)g)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=kd.alpha,
        help="weight of the KD term in [0, 1] (default %(default)g)",
    )
    p.add_argument(
        "--logit-loss",
        default=kd.logit_loss,
        choices=LOGIT_LOSSES.names(),
        help="one of %(choices)s: kd is Hinton's KL, dkd decoupled KD (default %(default)s)",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=kd.beta,
        help="dkd: weight of the non-target term (default %(default)g)",
    )
    p.add_argument(
        "--hint",
        default=None,
        metavar="auto|S:T,...",
        help="FitNets hints: 'auto' (pair layers by spatial size) or student:teacher pairs "
        "(default none)",
    )
    p.add_argument(
        "--hint-weight",
        type=float,
        default=kd.hint_weight,
        help="weight of the hint loss (default %(default)g)",
    )
    p.add_argument(
        "--attention-weight",
        type=float,
        default=kd.attention_weight,
        help="weight of attention transfer over the hint pairs (default %(default)g)",
    )
    p.add_argument(
        "--teacher-runtime",
        default=kd.teacher_runtime,
        choices=(AUTO, "torch", *RUNTIMES.names()),
        help="where the frozen teacher runs, one of %(choices)s; auto times each engine on one "
        "batch (default %(default)s)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute teacher logits each step (default: cached once per image)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=TrainConfig().seed,
        help="seeds the student's initialisation, shuffling and augmentation (default %(default)s)",
    )


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """The student's training run, with :class:`TrainConfig`'s defaults."""
    train = TrainConfig()
    p.add_argument(
        "--batch-size",
        type=int,
        default=train.batch_size,
        help="examples per step (default %(default)s)",
    )
    p.add_argument(
        "--optimizer",
        default=train.optimizer,
        choices=OPTIMIZERS,
        help="one of %(choices)s (default %(default)s)",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=train.weight_decay,
        help="L2 penalty, decoupled for adamw (default %(default)g)",
    )
    p.add_argument(
        "--augment",
        default=train.augment,
        choices=AUGMENTS.names(),
        help="training-batch augmentation, one of %(choices)s; the teacher sees the same views "
        "(default %(default)s)",
    )


def distill_parser(sub: argparse._SubParsersAction, add_common: AddCommon) -> None:
    """Add the ``distill`` subcommand to ``sub``."""
    p = sub.add_parser("distill", help="train a student from a trained teacher's outputs")
    p.add_argument("--teacher", required=True, metavar="ARTIFACT", help="the trained teacher")
    p.add_argument(
        "--student",
        required=True,
        help=f"an artifact to start from, or a model to build: {model_sources()}",
    )
    add_model_args(p, "none; an artifact has its own")
    p.add_argument("--out", required=True, help="artifact to write (.safetensors)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT.ckpt if present (without it, a fresh run deletes OUT.ckpt)",
    )
    _add_kd_options(p, epochs=10, lr=2e-3, flag="--epochs")
    add_common(p)


def slim_parser(sub: argparse._SubParsersAction, add_common: AddCommon) -> None:
    """Add the ``slim`` subcommand to ``sub``."""
    p = sub.add_parser("slim", help="narrow every layer of a trained artifact, then distil it")
    p.add_argument("artifact", metavar="ARTIFACT", help="the trained float artifact (the teacher)")
    defaults = inspect.signature(slim).parameters
    p.add_argument(
        "--width",
        type=float,
        default=defaults["width"].default,
        help="fraction of channels kept, in (0, 1] (default %(default)s)",
    )
    p.add_argument(
        "--init",
        default=defaults["init"].default,
        choices=list(INITS),
        help="one of %(choices)s: keep the kept channels' trained weights, or re-initialise "
        "every parameter (default %(default)s)",
    )
    p.add_argument(
        "--importance",
        default=defaults["importance"].default,
        choices=GROUP.names(),
        help="the criterion that picks the channels kept, one of %(choices)s (default %(default)s)",
    )
    p.add_argument(
        "--round-to",
        type=int,
        default=defaults["round_to"].default,
        metavar="N",
        help="keep widths multiples of N (default %(default)s)",
    )
    p.add_argument("--out", required=True, help="artifact to write (.safetensors)")
    _add_kd_options(p, epochs=2, lr=1e-3, flag="--distill-epochs")
    add_common(p)


def parse_hints(text: str | None) -> HintLayers:
    """``None`` → no hints, ``auto`` → automatic, ``s1:t1,s2:t2`` → name pairs."""
    if not text:
        return ()
    if text == AUTO:
        return AUTO
    pairs = []
    for item in text.split(","):
        student, sep, teacher = item.strip().partition(":")
        if not sep or not student or not teacher:
            raise ValueError(
                f"--hint takes 'auto' or student_layer:teacher_layer pairs separated by commas, "
                f"got {item!r}"
            )
        pairs.append((student, teacher))
    return tuple(pairs)


def _config(args: argparse.Namespace) -> DistillConfig:
    hints = parse_hints(args.hint)
    return DistillConfig(
        temperature=args.temperature,
        alpha=args.alpha,
        logit_loss=args.logit_loss,
        beta=args.beta,
        teacher_runtime=args.teacher_runtime,
        hint_layers=hints,
        hint_weight=args.hint_weight,
        attention_weight=args.attention_weight,
        cache_teacher=not args.no_cache,
        train=TrainConfig(
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            weight_decay=args.weight_decay,
            augment=args.augment,
            seed=args.seed,
        ),
    )


def _data(args: argparse.Namespace) -> Splits:
    return load_data(
        args.data,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        limit_eval=args.limit_eval,
        image_size=args.image_size,
    )


def _check_fits(model: nn.Module, splits: Splits, source: str) -> None:
    classes = arch_of(model).get("kwargs", {}).get("num_classes", splits.num_classes)
    if classes != splits.num_classes:
        raise DataError(
            f"{source} predicts {classes} classes but {splits.name} has {splits.num_classes}; "
            "use data with the same classes"
        )


def _student(args: argparse.Namespace, splits: Splits) -> tuple[nn.Module, dict[str, Any]]:
    if Path(args.student).is_file():
        source = Path(args.student)
        student = export.load(source)
        return student, {"parent": str(source), "parent_sha256": _sha256(source)}
    torch.manual_seed(args.seed)
    student = create_model(
        args.student,
        model_args=model_args_of(args),
        in_channels=splits.input_shape[0],
        num_classes=splits.num_classes,
        image_size=splits.input_shape[-1],
    )
    return student, {"model": args.student}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metrics(
    student: nn.Module, teacher: nn.Module, splits: Splits, device: torch.device
) -> dict[str, Any]:
    """The test set is read here, once, after training."""
    example = splits.test[0][0].unsqueeze(0)
    student.to(device)
    teacher.to(device)
    return {
        "val_accuracy": evaluate_accuracy(student, splits.val, device=device),
        "test_accuracy": evaluate_accuracy(student, splits.test, device=device),
        "teacher_test_accuracy": evaluate_accuracy(teacher, splits.test, device=device),
        "macs": count_macs(student.cpu(), example),
        "teacher_macs": count_macs(teacher.cpu(), example),
        "params": count_params(student),
        "teacher_params": count_params(teacher),
    }


def _report(args: argparse.Namespace, out: Path, metrics: dict[str, Any]) -> int:
    if args.json:
        print_json({"out": str(out), **metrics})
    else:
        print(
            f"saved {out}: test top-1 {metrics['test_accuracy']:.2f}% with "
            f"{metrics['macs'] / metrics['teacher_macs']:.0%} of the teacher's MACs "
            f"(teacher {metrics['teacher_test_accuracy']:.2f}%)"
        )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """Distil TEACHER into STUDENT (a new registered model or an artifact) and save it."""
    cfg = _config(args)  # validate before reading anything
    teacher_path = Path(args.teacher)
    inputs = [teacher_path] + ([Path(args.student)] if Path(args.student).is_file() else [])
    refuse_overwrite(inputs, Path(args.out), "distilled student")
    check_writable(args.out)
    if Path(args.student).is_file():
        refuse_model_args(model_args_of(args), "--student")
        refuse_quantized(args.student, "distill --student")
    splits = _data(args)
    teacher = export.load(teacher_path)
    _check_fits(teacher, splits, str(teacher_path))
    student, origin = _student(args, splits)
    out = Path(args.out)
    checkpoint = out.with_name(out.name + ".ckpt")
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()  # a fresh run must not silently continue an old one
    device = resolve_device(args.device)
    distill(
        student,
        teacher,
        splits,
        cfg,
        device=device,
        checkpoint=checkpoint,
        resume=args.resume,
        progress=not args.quiet,
    )
    metrics = _metrics(student, teacher, splits, device)
    provenance = {
        "command": "distill",
        "teacher": str(teacher_path),
        "teacher_sha256": _sha256(teacher_path),
        "student": origin,
        "config": cfg.to_dict(),
        "data": splits.describe(),
    }
    export.save(student.cpu(), out, provenance=provenance, metrics=metrics)
    checkpoint.unlink(missing_ok=True)
    return _report(args, out, metrics)


def cmd_slim(args: argparse.Namespace) -> int:
    """Slim ARTIFACT to --width, distil it from ARTIFACT for --distill-epochs, and save it."""
    cfg = _config(args)
    source = Path(args.artifact)
    refuse_overwrite([source], Path(args.out), "slimmed model")
    check_writable(args.out)
    refuse_quantized(source, "slim")
    teacher = export.load(source)
    splits = _data(args)
    _check_fits(teacher, splits, str(source))
    example = splits.train[0][0].unsqueeze(0)
    torch.manual_seed(args.seed)
    student = slim(
        teacher,
        args.width,
        example_inputs=example,
        data=splits,
        init=args.init,
        importance=args.importance,
        round_to=args.round_to,
    )
    device = resolve_device(args.device)
    if cfg.train.epochs:
        distill(student, teacher, splits, cfg, device=device, progress=not args.quiet)
    metrics = _metrics(student, teacher, splits, device)
    provenance = {
        "command": "slim",
        "parent": str(source),
        "parent_sha256": _sha256(source),
        "slim": {
            "width": args.width,
            "init": args.init,
            "importance": args.importance,
            "round_to": args.round_to,
        },
        "distill": cfg.to_dict(),
        "data": splits.describe(),
        "report": getattr(student, PRUNE_REPORT_ATTR, {}),
    }
    out = export.save(student.cpu(), args.out, provenance=provenance, metrics=metrics)
    return _report(args, out, metrics)
