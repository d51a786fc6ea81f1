"""``compress_sentence_encoder``: the smallest or fastest encoder that keeps its embeddings
within an agreement budget of the original's.

Three stages, each recorded in ``RUN_DIR/state.json`` once finished (:mod:`._runctx`):

1. **baseline** (:mod:`._baseline`): the original's embeddings, graphs and latencies.
2. **search** (here): candidates from the largest predicted saving to the smallest; each is
   pruned on the training sentences, distilled on them, exported to ONNX (fp32 and dynamic
   int8) and measured on the validation sentences; the first that holds the budget ends the
   search. The cheapest form within the budget wins, the unpruned encoder's included, so the
   result always holds the budget (at worst it is the original itself).
3. **export** (:mod:`._deploy`): the winner saved, verified, measured once on the test
   sentences and timed against the original's deployments; ``summary.json``, ``report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._device import resolve_device
from ..data import TextSplits, carve_validation
from ..models import SentenceEncoder, layer_widths, load_hf, save_hf
from ._baseline import FOLDER as BASELINE
from ._baseline import params, run_baseline
from ._checkpoint import drop_optimizer, remove_checkpoint
from ._deploy import run_export
from ._distill import EmbeddingDistillConfig, distill_encoder, distill_report
from ._openvino import calibration_batches, nncf_available, quantize_openvino
from ._plan import TOP_K, EncoderCompressConfig, candidate_label, choose, ordered
from ._prune import EncoderPruneConfig, prune_encoder
from ._records import ONNXRUNTIME, OPENVINO, UNPRUNED, CandidateRecord
from ._runctx import (
    Context,
    candidate_inputs,
    check_backend,
    open_run,
    run_config,
    save_embeddings,
)
from ._runtime import export_onnx, quantize_onnx

SEARCH = "search"
CANDIDATES = "candidates"
#: In a candidate's folder: its distillation's checkpoint, and the inputs it was made with.
CHECKPOINT = "checkpoint"
INPUTS = "inputs.json"
#: Wall time between two checkpoints of a candidate's distillation.
CHECKPOINT_SECONDS = 300.0


def compress_sentence_encoder(
    encoder: SentenceEncoder | str | os.PathLike[str],
    splits: TextSplits,
    cfg: EncoderCompressConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Compress a sentence encoder within ``cfg``'s agreement budget into ``out_dir``.

    Args:
        encoder: the original, or its Hugging Face directory (read with
            :func:`~slimkit.models.load_hf`).
        splits: training sentences (pruning, distillation), validation sentences (every
            decision) and test sentences (``eval``: measured once, at the end). Without a
            validation split, one is carved from the training sentences
            (:func:`~slimkit.data.carve_validation`, recorded in the data's description).
        cfg: the budget, goal, candidates, distillation and measurement settings.
        out_dir: the run directory (see :mod:`slimkit.text._runctx`).
        resume: continue the run in ``out_dir``; finished stages and candidates are kept.
        log: receives one line per step.
        progress: show a progress bar while each candidate is distilled.
        device: where candidates are distilled (``cpu``, ``cuda``, ``cuda:N`` or ``auto``);
            pruning, measurement and export run on the CPU, where the result is deployed.
            Not part of the run's inputs: a run resumes on another device.

    Returns:
        The summary, also written to ``out_dir/summary.json`` (see ``docs/text.md``).

    Example:
        >>> splits = load_text("text:runs/corpus", limit_train=20000)
        >>> cfg = EncoderCompressConfig(min_cosine=0.97, distill_steps=2000)
        >>> summary = compress_sentence_encoder("all-MiniLM-L6-v2", splits, cfg, "runs/minilm")
        >>> summary["chosen"]["label"], summary["speedup"]["vs_best_peer"]

    Raises:
        ValueError: for too few validation or test sentences, or no training sentences.
        SlimkitError: for an existing run without ``resume``, or one on another input.
    """
    check_backend(cfg)
    where = resolve_device(device)
    splits = check_splits(splits)
    teacher = encoder if isinstance(encoder, SentenceEncoder) else load_hf(encoder)
    teacher.eval()
    run = open_run(Path(out_dir), run_config(cfg, teacher, splits), resume)
    if run.redone:
        log(f"resume: redoing {', '.join(run.redone)} (their options changed)")
    threads = cfg.measure.threads or torch.get_num_threads()
    if run.done(BASELINE):
        threads = run.output(BASELINE)["threads"]
    length = min(cfg.measure.max_length, teacher.max_length)
    ctx = Context(teacher, splits, cfg, run, log, threads, length, progress, device=where)
    if where.type != "cpu":
        log(f"distilling on {where}")
    run_baseline(ctx)
    run_search(ctx)
    return run_export(ctx)


def check_splits(splits: TextSplits) -> TextSplits:
    """``splits`` with a validation split (carved from training when it has none), checked
    to hold enough sentences for the top-10 overlap.

    Raises:
        ValueError: naming the split that is too small and how to grow it.
    """
    if not splits.val:
        splits = carve_validation(splits)
    if not splits.train:
        raise ValueError(f"{splits.name} has no training sentences; pass more text")
    for name, texts in (("validation", splits.val), ("test", splits.eval)):
        if len(texts) <= TOP_K:
            raise ValueError(
                f"{splits.name} has {len(texts)} {name} sentences; the top-{TOP_K} overlap "
                f"needs at least {TOP_K + 1}: add documents (or text) or raise the held-out "
                "fractions"
            )
    return splits


def run_search(ctx: Context) -> None:
    """Try the candidates in order until one holds the budget (skipped when done)."""
    if ctx.run.done(SEARCH):
        return
    cfg, budget = ctx.cfg, ctx.cfg.budget
    plan = ordered(ctx.teacher, cfg.candidates, goal=cfg.goal, length=ctx.length)
    unpruned = CandidateRecord.from_dict(ctx.run.output(BASELINE)["unpruned"])
    records: list[CandidateRecord] = []
    for index, (candidate, predicted) in enumerate(plan, 1):
        record = _finished(ctx, candidate, index)
        if record is None:
            record = _evaluate(ctx, candidate, index, predicted, len(plan))
            _keep(ctx, record)
        records.append(record)
        if any(budget.holds(f) for f in record.forms):
            break
    found = choose([unpruned, *records], budget, cfg.goal)
    chosen, form = found if found is not None else (unpruned, unpruned.forms[0])
    seconds = sum(r.seconds for r in records)
    with ctx.run.stage(SEARCH, {}, seconds=seconds) as out:
        out.update(
            order=[{"label": candidate_label(c), "predicted": p} for c, p in plan],
            candidates=[r.to_dict() for r in records],
            chosen={"label": chosen.label, "form": form.form},
            met_by_pruned=chosen.label != UNPRUNED,
            within_budget=found is not None,
        )
    where = "the unpruned encoder" if chosen.label == UNPRUNED else f"candidate {chosen.label}"
    ctx.log(
        f"search: {where} as {form.form} (validation cosine {form.mean_cosine:.4f}, top-10 "
        f"{form.top10_overlap:.3f}, {form.relative_b32:.2f}× the original's fp32 ORT time)"
    )


def _finished(ctx: Context, candidate: EncoderPruneConfig, index: int) -> CandidateRecord | None:
    """The record an earlier run finished for ``candidate``, if its inputs are unchanged and
    the files it would need are there; else None (the candidate is redone)."""
    label = candidate_label(candidate)
    inputs = candidate_inputs(ctx.run.state["config"], candidate.to_dict())
    for entry in ctx.run.state.get(CANDIDATES, []):
        if entry["record"]["label"] != label or entry["inputs"] != inputs:
            continue
        record = CandidateRecord.from_dict(entry["record"])
        holds = any(ctx.cfg.budget.holds(f) for f in record.forms)
        if holds and (record.directory is None or not (ctx.path / record.directory).is_dir()):
            return None  # it holds now, but its files were removed when it did not
        ctx.log(f"candidate {index} {label}: finished by an earlier run, not redone")
        return dataclasses.replace(record, index=index)
    return None


def _keep(ctx: Context, record: CandidateRecord) -> None:
    """Record a finished candidate in ``state.json`` (replacing an older one of its label)."""
    prune = record.prune.to_dict() if record.prune is not None else {}
    entry = {
        "inputs": candidate_inputs(ctx.run.state["config"], prune),
        "record": record.to_dict(),
    }
    kept = [e for e in ctx.run.state.get(CANDIDATES, []) if e["record"]["label"] != record.label]
    ctx.run.state[CANDIDATES] = [*kept, entry]
    ctx.run.save()


def training_texts(
    cfg: EncoderCompressConfig, train: Sequence[str]
) -> tuple[list[str], EmbeddingDistillConfig]:
    """The sentences one distillation reads and its config: with ``distill_steps``, exactly
    that many batches (the training sentences cycled, one epoch); else ``cfg.distill`` over
    the training sentences."""
    if cfg.distill_steps is None:
        return list(train), cfg.distill
    count = cfg.distill_steps * cfg.distill.train.batch_size
    schedule = dataclasses.replace(cfg.distill.train, epochs=1)
    texts = [train[i % len(train)] for i in range(count)]
    return texts, dataclasses.replace(cfg.distill, train=schedule)


def _evaluate(
    ctx: Context, candidate: EncoderPruneConfig, index: int, predicted: float, total: int
) -> CandidateRecord:
    """Prune, distil, export and measure one candidate."""
    label, start = candidate_label(candidate), time.perf_counter()
    folder = f"{CANDIDATES}/{label}"
    directory = ctx.path / folder
    checkpoint = _candidate_folder(ctx, candidate, directory)
    ctx.log(f"candidate {index}/{total} {label}: predicted {predicted:.2f} of the cost")
    student = prune_encoder(ctx.teacher, candidate, ctx.splits.train)
    texts, distill = training_texts(ctx.cfg, ctx.splits.train)
    student.to(ctx.device)
    distill_encoder(
        student,
        ctx.distill_teacher(),
        texts,
        distill,
        progress=ctx.progress,
        max_seconds=ctx.cfg.max_seconds,
        checkpoint=checkpoint,
        checkpoint_seconds=CHECKPOINT_SECONDS,
    )
    student.to("cpu")
    trained = distill_report(student)
    if trained.get("resumed_at"):
        ctx.log(f"  distillation resumed at step {trained['resumed_at'][-1]}")
    graphs = _export_forms(ctx, student, folder)
    yardstick = ctx.run.output(BASELINE)["files"]["fp32"]
    forms = ctx.measure_forms(graphs, yardstick)
    holds = any(ctx.cfg.budget.holds(f) for f in forms)
    if holds:
        remove_checkpoint(checkpoint)  # the candidate is finished: its files replace it
        (directory / INPUTS).unlink()
        save_hf(student, directory / "model")
        val = student.encode(ctx.splits.val, max_length=ctx.length)
        save_embeddings(directory / "val_embeddings.safetensors", {"val": val})
    else:  # never chosen: keep its measurements and trained weights, not its graphs
        _keep_weights_only(directory)
        forms = tuple(dataclasses.replace(f, graph="") for f in forms)
    record = CandidateRecord(
        label=label,
        index=index,
        prune=candidate,
        predicted=predicted,
        params=params(student),
        layers=layer_widths(student.backbone),
        distill=_distilled(trained),
        forms=forms,
        seconds=round(time.perf_counter() - start, 2),
        directory=folder if holds else None,
    )
    _log_candidate(ctx, record, holds)
    return record


def _candidate_folder(ctx: Context, candidate: EncoderPruneConfig, directory: Path) -> Path:
    """Empty ``directory`` of what a killed attempt left, but its distillation checkpoint when
    that attempt ran on the same inputs; the checkpoint's folder."""
    inputs = candidate_inputs(ctx.run.state["config"], candidate.to_dict())
    marker = directory / INPUTS
    same = marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == inputs
    directory.mkdir(parents=True, exist_ok=True)
    _clear(directory, keep={CHECKPOINT} if same else set())
    marker.write_text(json.dumps(inputs), encoding="utf-8")
    return directory / CHECKPOINT


def _keep_weights_only(directory: Path) -> None:
    """Empty a missed candidate's folder but for its finished distillation (the student's
    weights and progress, not the optimiser's state): if a looser budget makes it hold on a
    resume, it is exported again without distilling again."""
    _clear(directory, keep={CHECKPOINT, INPUTS})
    drop_optimizer(directory / CHECKPOINT)


def _clear(directory: Path, keep: set[str]) -> None:
    """Delete everything in ``directory`` but the entries named in ``keep``."""
    for path in directory.iterdir():
        if path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _export_forms(ctx: Context, student: SentenceEncoder, folder: str) -> dict[str, str]:
    """The student's graph in every form measured (form name → path in the run directory):
    fp32 and ONNX Runtime's dynamic int8, and on OpenVINO the fp32 graph and NNCF's int8, for
    the runtimes the result may deploy on."""
    fp32 = f"{folder}/fp32.onnx"
    export_onnx(student, ctx.path / fp32)
    graphs: dict[str, str] = {}
    if ONNXRUNTIME in ctx.runtimes:
        graphs["fp32"] = fp32
        if ctx.cfg.quantize:
            graphs["int8"] = f"{folder}/int8.onnx"
            quantize_onnx(ctx.path / fp32, ctx.path / graphs["int8"])
    if OPENVINO in ctx.runtimes:
        graphs[f"fp32-{OPENVINO}"] = fp32
        if ctx.cfg.quantize and nncf_available():
            graphs[f"int8-{OPENVINO}"] = f"{folder}/int8-{OPENVINO}.xml"
            calibration = calibration_batches(student, ctx.splits.train, ctx.length)
            quantize_openvino(ctx.path / fp32, ctx.path / graphs[f"int8-{OPENVINO}"], calibration)
    return graphs


def _distilled(report: dict[str, Any]) -> dict[str, Any]:
    losses = report.get("epoch_loss") or [None]
    return {
        "steps": report.get("steps"),
        "seconds": report.get("seconds"),
        "stopped_early": report.get("stopped_early"),
        "sentences": report.get("texts"),
        "last_epoch_loss": losses[-1],
        "resumed_at": report.get("resumed_at", []),
    }


def _log_candidate(ctx: Context, record: CandidateRecord, holds: bool) -> None:
    forms = ", ".join(
        f"{f.form} cosine {f.mean_cosine:.4f} top-10 {f.top10_overlap:.3f} "
        f"{f.relative_b32:.2f}× time"
        for f in record.forms
    )
    verdict = "holds the budget" if holds else "misses the budget"
    ctx.log(
        f"  {record.params:,} parameters, {record.distill['steps']} distillation steps in "
        f"{record.distill['seconds']} s; {forms}: {verdict}"
    )
