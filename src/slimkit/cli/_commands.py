"""The CLI subcommands: thin layers that build the same config objects as the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path
from typing import Any

import torch

from .. import export
from .._checks import check_number
from .._device import resolve_device
from .._fit import check_fits
from .._io import check_writable, refuse_overwrite, sha256_file
from ..data import Splits, load_data
from ..distill import DistillConfig, kd_loss
from ..graph import DependencyGraph
from ..measure import count_macs, count_params, cpu_info, evaluate_accuracy, profile
from ..models import arch_of, create_model, model_names
from ..prune import (
    AGP,
    Global,
    OneShot,
    PerLayer,
    StructuredConfig,
    Trial,
    UnstructuredConfig,
    check_budget,
    prune,
    search_sparsity,
    weight_sparsity,
)
from ..runtime import profile_deployed
from ..train import TrainConfig, TrainRecipe, load_train_recipe, train
from ..train._distributed import init_from_env
from ..train._distributed import rank as dist_rank
from ..train._loop import LossFn
from ._compress import COMPRESS_COMMANDS, check_threads
from ._distill import cmd_distill, cmd_slim
from ._guards import refuse_quantized
from ._output import log, print_json, profile_table
from ._parser import MODEL_SOURCES, field_default, model_args_of, refuse_model_args
from ._quantize import cmd_quantize


def _data(args: argparse.Namespace, name: str | None = None) -> Splits:
    return load_data(
        name or args.data,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        limit_eval=args.limit_eval,
        image_size=args.image_size,
    )


def cmd_models(args: argparse.Namespace) -> int:
    names = [*model_names(), *MODEL_SOURCES]
    if args.json:
        print_json(names)
        return 0
    width = max(map(len, names))
    print("\n".join(f"{name:<{width}}  {MODEL_SOURCES.get(name, '')}".rstrip() for name in names))
    return 0


#: ``slimkit train``'s config without a recipe; a recipe replaces it, flags override either.
CLI_TRAIN = TrainConfig(epochs=12, lr=2e-3)
#: ``slimkit prune``'s fine-tuning unless ``--finetune-epochs`` / ``--finetune-lr`` say otherwise.
PRUNE_TRAIN = TrainConfig(epochs=2, lr=1e-3)
_TRAIN_FLAGS = ("epochs", "lr", "batch_size", "optimizer", "weight_decay", "augment", "seed")


def _train_recipe(args: argparse.Namespace) -> TrainRecipe:
    """The recipe file (if any) with the flags given on the command line applied over it."""
    base = load_train_recipe(args.recipe) if args.recipe else None
    flags = {name: getattr(args, name) for name in _TRAIN_FLAGS if getattr(args, name) is not None}
    model = args.model or (base.model if base else None)
    out = args.out or (base.out if base else None)
    for flag, value in (("model", model), ("out", out)):
        if not value:
            raise ValueError(f"train needs --{flag}, or a --recipe that names it")
    return TrainRecipe(
        model=str(model),
        model_args={**(base.model_args if base else {}), **model_args_of(args)},
        out=str(out),
        data=args.data or (base.data if base else "fashion-mnist"),
        train=dataclasses.replace(base.train if base else CLI_TRAIN, **flags),
    )


def cmd_train(args: argparse.Namespace) -> int:
    recipe = _train_recipe(args)
    check_writable(recipe.out)
    splits = _data(args, recipe.data)
    model = create_model(
        recipe.model,
        model_args=recipe.model_args,
        in_channels=splits.input_shape[0],
        num_classes=splits.num_classes,
        image_size=splits.input_shape[-1],
    )
    cfg = recipe.train
    torch.manual_seed(cfg.seed)
    out = Path(recipe.out)
    checkpoint = out.with_name(out.name + ".ckpt")
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()  # a fresh run must not silently continue an old one
    device = resolve_device(args.device)
    # Under `torchrun --nproc-per-node N -m slimkit train ...` every rank trains a slice of
    # each batch; rank 0 alone writes the artifact.
    if init_from_env(device) and dist_rank() != 0:
        train(model, splits, cfg, device=device, checkpoint=None, progress=False)
        return 0
    history = train(
        model,
        splits,
        cfg,
        device=device,
        checkpoint=checkpoint,
        resume=args.resume,
        progress=not args.quiet,
    )
    test_accuracy = evaluate_accuracy(model, splits.test, device=device)
    metrics = {
        "val_accuracy": history.val_accuracies[-1] if history.val_accuracies else None,
        "test_accuracy": test_accuracy,
    }
    provenance = {
        "command": "train",
        "model": recipe.model,
        "recipe": args.recipe,
        "config": cfg.to_dict(),
        "data": splits.describe(),
        "history": history.to_dict(),
        # Over all sessions of a resumed run: training and validation, not the final test.
        "wall_time_s": round(sum(history.epoch_seconds), 3),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": cpu_info()["name"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    export.save(model.cpu(), out, provenance=provenance, metrics=metrics)
    checkpoint.unlink(missing_ok=True)
    if args.json:
        print_json({"out": str(out), **metrics})
    else:
        print(f"saved {out}: test top-1 {test_accuracy:.2f}%, val top-1 {metrics['val_accuracy']}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    check_threads(args.threads)
    splits = _data(args)
    device = resolve_device(args.device)
    results = []
    for path in args.artifacts:
        model = export.load(path)
        check_fits(model, splits, path)
        measure = (
            functools.partial(profile, device=device)
            if args.backend == "torch"
            else functools.partial(profile_deployed, runtime=args.backend)
        )
        measured = measure(
            model,
            splits,
            artifact=path,
            threads=args.threads,
            accuracy=not args.no_accuracy,
        )
        results.append({"artifact": path, **measured.to_dict()})
    if args.json:
        print_json(results[0] if len(results) == 1 else results)
    else:
        print(profile_table([Path(p).name for p in args.artifacts], results))
    return 0


def _unstructured_config(args: argparse.Namespace, sparsity: float) -> UnstructuredConfig:
    schedule = AGP(steps=args.agp_steps) if args.schedule == "agp" else OneShot()
    return UnstructuredConfig(
        sparsity=sparsity,
        importance=args.importance or field_default(UnstructuredConfig, "importance"),
        scope=PerLayer() if args.scope == "layer" else Global(),
        exclude=tuple(args.exclude),
        schedule=schedule,
    )


def _print_trial(args: argparse.Namespace, trial: Trial) -> None:
    verdict = "within budget" if trial.within_budget else "over budget"
    log(
        args,
        f"trial {trial.index}: sparsity {trial.sparsity:.2%} -> val top-1 "
        f"{trial.val_accuracy:.2f}% (drop {trial.drop:+.2f}) {verdict}",
    )


def _structured_config(args: argparse.Namespace) -> StructuredConfig:
    return StructuredConfig(
        ratio=args.ratio,
        target_macs=args.target_macs,
        target_latency=args.target_latency,
        importance=args.importance or field_default(StructuredConfig, "importance"),
        scope=Global() if args.scope == "global" else PerLayer(),
        round_to=args.round_to,
        ignore=tuple(args.ignore),
        remove_blocks=tuple(args.remove_blocks),
        schedule=AGP(steps=args.agp_steps) if args.schedule == "agp" else OneShot(),
    )


def _prune_train(args: argparse.Namespace) -> TrainConfig:
    """Fine-tuning after pruning (``--finetune-epochs``, ``--finetune-lr``), checked with the
    other arguments before anything is read."""
    refuse_overwrite([Path(args.artifact)], Path(args.out), "pruned model")
    check_writable(args.out)
    check_number("--finetune-lr", args.finetune_lr, positive=True)
    schedule = dataclasses.replace(
        PRUNE_TRAIN, epochs=args.finetune_epochs, lr=args.finetune_lr, seed=args.seed
    )
    refuse_quantized(args.artifact, "prune")  # reads the artifact's spec: after the arguments
    return schedule


def _prune_inputs(
    args: argparse.Namespace, schedule: TrainConfig
) -> tuple[Path, torch.nn.Module, Splits, torch.device, TrainConfig]:
    """What both pruning methods read: the parent artifact, the data, the device, fine-tuning."""
    source = Path(args.artifact)
    model = export.load(source)
    splits = _data(args)
    check_fits(model, splits, str(source))
    return source, model, splits, resolve_device(args.device), schedule


def _recovery(
    args: argparse.Namespace, teacher: torch.nn.Module
) -> tuple[LossFn | None, dict[str, Any]]:
    """The fine-tuning loss: KD from the unpruned model (the default) or plain cross-entropy."""
    if args.finetune_epochs == 0:
        return None, {"method": "none"}
    if args.recover == "ce":
        return None, {"method": "ce"}
    defaults = DistillConfig()
    loss_fn = kd_loss(teacher, temperature=defaults.temperature, alpha=defaults.alpha)
    return loss_fn, {
        "method": "kd",
        "teacher": "parent",
        "temperature": defaults.temperature,
        "alpha": defaults.alpha,
    }


def cmd_prune_structured(args: argparse.Namespace) -> int:
    cfg = _structured_config(args)  # validate before reading anything
    source, model, splits, device, schedule = _prune_inputs(args, _prune_train(args))
    loss_fn, recover = _recovery(args, model)
    pruned = prune(
        model,
        cfg,
        data=splits,
        train=schedule,
        device=device,
        loss_fn=loss_fn,
        progress=not args.quiet,
    )
    example = splits.test[0][0].unsqueeze(0)
    metrics = {
        "macs": count_macs(pruned.cpu(), example),
        "baseline_macs": count_macs(model.cpu(), example),
        "params": count_params(pruned),
        "baseline_params": count_params(model),
        "val_accuracy": evaluate_accuracy(pruned, splits.val, device=device),
        "test_accuracy": evaluate_accuracy(pruned, splits.test, device=device),
        "baseline_test_accuracy": evaluate_accuracy(model, splits.test, device=device),
    }
    provenance = {
        "command": "prune",
        "parent": str(source),
        "parent_sha256": sha256_file(source),
        "config": cfg.to_dict(),
        "train": schedule.to_dict(),
        "recover": recover,
        "data": splits.describe(),
        "report": pruned.slimkit_prune_report,
    }
    summary = (
        f"MACs {metrics['macs']:,} ({metrics['macs'] / metrics['baseline_macs']:.0%} "
        f"of {metrics['baseline_macs']:,})"
    )
    return _save_pruned(args, pruned, provenance, metrics, summary)


def cmd_graph(args: argparse.Namespace) -> int:
    model_args = model_args_of(args)
    if Path(args.model).is_file():
        refuse_model_args(model_args, "MODEL")
        model = export.load(args.model)
        kwargs = arch_of(model).get("kwargs", {})
    else:
        kwargs = {
            "in_channels": args.in_channels,
            "num_classes": args.num_classes,
            "image_size": args.image_size,
        }
        model = create_model(args.model, model_args=model_args, **kwargs)
    size = kwargs.get("image_size", args.image_size)
    example = torch.randn(1, kwargs.get("in_channels", args.in_channels), size, size)
    graph = DependencyGraph.build(model, example)
    if args.json:
        groups = [
            {
                "index": g.index,
                "units": len(g.units),
                "unit_size": g.unit_size,
                "blocked_units": g.blocked_units,
                "sources": list(g.sources),
                "members": [str(m) for m in g.members],
                "reasons": list(g.reasons),
            }
            for g in graph.groups
        ]
        print_json({**graph.summary(), "groups": groups})
    else:
        print(graph.table(limit=args.limit, members=args.members))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.method == "structured":
        return cmd_prune_structured(args)
    if (args.sparsity is None) == (args.max_drop is None):
        raise ValueError("pass exactly one of --sparsity S or --max-drop P")
    if args.max_drop is not None:  # validate before reading anything
        check_budget(
            args.max_drop,
            max_trials=args.max_trials,
            max_sparsity=args.max_sparsity,
            strategy=args.strategy,
        )
        cfg = _unstructured_config(args, 0.0)
    else:
        cfg = _unstructured_config(args, args.sparsity)
    source, model, splits, device, schedule = _prune_inputs(args, _prune_train(args))
    loss_fn, recover = _recovery(args, model)
    provenance: dict[str, Any] = {
        "command": "prune",
        "parent": str(source),
        "parent_sha256": sha256_file(source),
        "train": schedule.to_dict(),
        "recover": recover,
        "data": splits.describe(),
    }
    if args.max_drop is not None:
        search = search_sparsity(
            model,
            splits,
            cfg,
            max_drop=args.max_drop,
            train=schedule,
            max_trials=args.max_trials,
            max_sparsity=args.max_sparsity,
            strategy=args.strategy,
            device=device,
            on_trial=functools.partial(_print_trial, args),
            progress=not args.quiet,
            loss_fn=loss_fn,
        )
        assert search.model is not None and search.best is not None  # search raises otherwise
        pruned = search.model
        cfg = dataclasses.replace(cfg, sparsity=search.best.sparsity)
        provenance["budget_search"] = search.to_dict()
    else:
        pruned = prune(
            model,
            cfg,
            data=splits,
            train=schedule,
            device=device,
            loss_fn=loss_fn,
            progress=not args.quiet,
        )
    provenance["config"] = cfg.to_dict()
    metrics = _final_metrics(model, pruned, splits, cfg, device)
    summary = f"sparsity {metrics['sparsity']:.2%} of prunable weights"
    return _save_pruned(args, pruned, provenance, metrics, summary)


def _save_pruned(
    args: argparse.Namespace,
    pruned: torch.nn.Module,
    provenance: dict[str, Any],
    metrics: dict[str, Any],
    summary: str,
) -> int:
    export.save(pruned.cpu(), args.out, provenance=provenance, metrics=metrics)
    if args.json:
        print_json({"out": args.out, **metrics})
    else:
        print(
            f"saved {args.out}: {summary}, test top-1 {metrics['test_accuracy']:.2f}% "
            f"(baseline {metrics['baseline_test_accuracy']:.2f}%)"
        )
    return 0


def _final_metrics(
    base: torch.nn.Module,
    pruned: torch.nn.Module,
    splits: Splits,
    cfg: UnstructuredConfig,
    device: torch.device,
) -> dict[str, Any]:
    """The test set is read here, once, after every decision has been made on validation data."""
    return {
        "sparsity": weight_sparsity(pruned, cfg.exclude),
        "val_accuracy": evaluate_accuracy(pruned, splits.val, device=device),
        "test_accuracy": evaluate_accuracy(pruned, splits.test, device=device),
        "baseline_test_accuracy": evaluate_accuracy(base, splits.test, device=device),
    }


COMMANDS = {
    "models": cmd_models,
    "train": cmd_train,
    "profile": cmd_profile,
    "prune": cmd_prune,
    "graph": cmd_graph,
    "quantize": cmd_quantize,
    "distill": cmd_distill,
    "slim": cmd_slim,
    **COMPRESS_COMMANDS,
}
