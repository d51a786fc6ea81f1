"""The export stage and the summary of a sentence-encoder compress run.

The chosen encoder is saved with :func:`~slimkit.models.save_hf` into ``RUN_DIR/model/`` (fp32,
loadable by ``transformers.AutoModel`` alone) and reloaded to check that it reproduces the
embeddings measured during the search; its deployed graph is copied to ``RUN_DIR/model.onnx``
(an ONNX Runtime form, or OpenVINO's float form, which reads the ONNX graph) or to
``RUN_DIR/model.xml`` + ``model.bin`` (NNCF's int8, OpenVINO's IR). Then, once, the test
sentences: agreement of the deployed graph (and of the int8 peers) with the original. Last,
latency at batch 1 and 32 of the original's deployments and the result's, all interleaved in
the same rounds, so the speed-ups compare like with like.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .._version import __version__
from ..errors import SlimkitError
from ..models import SentenceEncoder, load_hf, save_hf
from ..search import RunDir
from ._baseline import EAGER, ORT_FP32, OV_FP32, PEER_INT8, PEER_OV_INT8, PEERS
from ._baseline import FOLDER as BASELINE
from ._bench import BATCHES, Runner, eager, latency_table
from ._openvino import copy_graph
from ._records import OPENVINO, UNPRUNED, CandidateRecord, FormResult
from ._report import write_markdown
from ._runctx import TASK, Context, Encoder, load_embeddings

EXPORT, MODEL, ONNX, OPENVINO_IR = "export", "model", "model.onnx", "model.xml"
#: The saved model must reproduce the searched student's embeddings this closely.
RELOAD_ATOL = 1e-5


def runner_name(form: FormResult) -> str:
    """The latency-table name of the result in ``form``: ``student_int8_ort``, ..."""
    precision = form.form.split("-")[0]
    return f"student_{precision}_{'ov' if form.runtime == OPENVINO else 'ort'}"


def deployed_file(form: FormResult) -> str:
    """Where the chosen form's graph goes in the run directory."""
    return OPENVINO_IR if form.graph.endswith(".xml") else ONNX


def run_export(ctx: Context) -> dict[str, Any]:
    """Export the chosen encoder (unless done), then write ``summary.json`` and
    ``report.md``; returns the summary."""
    if not ctx.run.done(EXPORT):
        _export(ctx)
    return _write_summary(ctx.run)


def _write_summary(run: RunDir) -> dict[str, Any]:
    summary = build_summary(run)
    atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=1) + "\n")
    write_markdown(run.path, summary)
    return summary


def write_text_report(run_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``summary.json`` and ``report.md`` again from a finished sentence-encoder run's
    ``state.json``; returns their paths.

    Raises:
        SlimkitError: if ``run_dir`` holds no finished sentence-encoder run.
    """
    run = RunDir.open(Path(run_dir))
    if run.state.get("config", {}).get("task") != TASK or not run.done(EXPORT):
        raise SlimkitError(
            f"{run_dir} holds no finished --task {TASK} run; finish it with compress --resume"
        )
    summary = _write_summary(run)
    return {"markdown": summary["files"]["report"], "summary": summary["files"]["summary"]}


def chosen_record(run: RunDir) -> tuple[CandidateRecord, FormResult]:
    """The candidate and the form the search chose."""
    search, chosen = run.output("search"), run.output("search")["chosen"]
    if chosen["label"] == UNPRUNED:
        record = CandidateRecord.from_dict(run.output(BASELINE)["unpruned"])
    else:
        found = [c for c in search["candidates"] if c["label"] == chosen["label"]]
        record = CandidateRecord.from_dict(found[0])
    return record, record.form(chosen["form"])


def _export(ctx: Context) -> None:
    record, form = chosen_record(ctx.run)
    files = ctx.run.output(BASELINE)["files"]
    with ctx.run.stage(EXPORT, {}) as out:
        if record.directory is None:  # the unpruned encoder
            student, reference = ctx.teacher, ctx.teacher_embeddings()["val"]
        else:
            directory = ctx.path / record.directory
            student = load_hf(directory / MODEL)
            reference = load_embeddings(directory / "val_embeddings.safetensors")["val"]
        model_dir = _write_model(ctx, student, record, form)
        reloaded = load_hf(model_dir)
        again = reloaded.encode(ctx.splits.val, max_length=ctx.length)
        diff = float((again - reference).abs().max())
        if diff > RELOAD_ATOL:
            raise SlimkitError(
                f"{model_dir} reloads with embeddings up to {diff:.2e} away from the searched "
                f"encoder's (allowed {RELOAD_ATOL}); the saved model is wrong: report this bug"
            )
        target = deployed_file(form)
        copy_graph(ctx.path / form.graph, ctx.path / target)
        ctx.log(f"export: {model_dir} and {ctx.path / target} ({form.form}); test sentences")
        test = ctx.agreement(ctx.session(target, form.runtime), "test")
        peers = _peer_runners(ctx, files)
        peer_test = {
            name: ctx.agreement(runner, "test")
            for name, runner in peers.items()
            if name in (PEER_INT8, PEER_OV_INT8)
        }
        runners: dict[str, Runner] = {
            EAGER: eager(ctx.teacher),
            **peers,
            "student_fp32_eager": eager(reloaded),
        }
        runners.update({runner_name(f): ctx.session(f.graph, f.runtime) for f in record.forms})
        ctx.log(f"export: timing {', '.join(runners)} at batch {' and '.join(map(str, BATCHES))}")
        latency = latency_table(
            runners,
            ctx.teacher,
            ctx.splits.val,
            length=ctx.length,
            rounds=ctx.cfg.measure.rounds,
            threads=ctx.threads,
        )
        out.update(
            chosen={"label": record.label, "form": form.form},
            test_agreement=test,
            peer_test_agreement=peer_test[PEER_INT8],
            peer_test_agreements=peer_test,
            latency_ms=latency,
            deployed=runner_name(form),
            runtime=form.runtime,
            reload={
                "max_abs_diff": diff,
                "trust_remote_code": (model_dir / "slimkit_bert.py").is_file(),
            },
            files={"model": MODEL, "deployed": target},
        )


def _peer_runners(ctx: Context, files: dict[str, str]) -> dict[str, Encoder]:
    """The original's deployments besides eager PyTorch that the baseline measured."""
    measured = ctx.run.output(BASELINE)["latency_ms"]
    runners: dict[str, Encoder] = {
        ORT_FP32: ctx.session(files["fp32"]),
        PEER_INT8: ctx.session(files["peer_int8"]),
    }
    if OV_FP32 in measured:
        runners[OV_FP32] = ctx.session(files["fp32"], OPENVINO)
    if PEER_OV_INT8 in measured:
        runners[PEER_OV_INT8] = ctx.session(files["openvino_int8"], OPENVINO)
    return runners


def _write_model(
    ctx: Context, student: SentenceEncoder, record: CandidateRecord, form: FormResult
) -> Path:
    """``RUN_DIR/model/``, replaced whole: written beside it, then renamed into place."""
    target, partial = ctx.path / MODEL, ctx.path / f".{MODEL}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    provenance = {
        "slimkit": __version__,
        "task": TASK,
        "original": ctx.run.state["config"]["input"],
        "candidate": record.label,
        "prune": None if record.prune is None else record.prune.to_dict(),
        "distill": {"config": ctx.cfg.distill.to_dict(), **record.distill},
        "validation": form.to_dict(),
        "deployed_graph": f"{deployed_file(form)} ({form.form}, {form.runtime})",
    }
    save_hf(student, partial, provenance=provenance)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def _speedups(latency: dict[str, dict[str, float]], deployed: str) -> dict[str, Any]:
    """Speed-ups of the deployed graph over fp32 eager PyTorch and over the fastest peer."""
    out: dict[str, Any] = {"vs_fp32_eager": {}, "vs_best_peer": {}, "best_peer": {}}
    peers = [name for name in PEERS if name in latency]
    for batch in (f"b{size}" for size in BATCHES):
        best = min(peers, key=lambda name: latency[name][batch])
        out["vs_fp32_eager"][batch] = latency[EAGER][batch] / latency[deployed][batch]
        out["vs_best_peer"][batch] = latency[best][batch] / latency[deployed][batch]
        out["best_peer"][batch] = best
    return out


def build_summary(run: RunDir) -> dict[str, Any]:
    """The summary of a finished run, read from its stages (see ``docs/text.md``)."""
    baseline, search, export = (run.output(s) for s in (BASELINE, "search", EXPORT))
    config = run.state["config"]
    compress = config["compress"]
    record, form = chosen_record(run)
    return {
        "task": TASK,
        "model": config["input"]["model"] or "an encoder given in memory",
        "goal": compress["goal"],
        "budget": {
            "min_cosine": compress["min_cosine"],
            "min_overlap": compress["min_overlap"],
            "split": "validation",
            "met_by_pruned": search["met_by_pruned"],
            "within_budget": search["within_budget"],
        },
        "chosen": {
            "label": record.label,
            "form": form.form,
            "prune": None if record.prune is None else record.prune.to_dict(),
            "params": record.params,
            "layers": record.layers,
            "distill": record.distill,
            "validation": form.to_dict(),
            "test": export["test_agreement"],
        },
        "baseline": {
            "params": baseline["teacher"]["params"],
            "layers": baseline["teacher"]["layers"],
            "validation": baseline["val_agreement"],
            "latency_ms": baseline["latency_ms"],
        },
        "candidates": [baseline["unpruned"], *search["candidates"]],
        "order": search["order"],
        "latency_ms": export["latency_ms"],
        "deployed": export["deployed"],
        "runtime": export.get("runtime", "onnxruntime"),
        "speedup": _speedups(export["latency_ms"], export["deployed"]),
        "test": {
            "chosen": export["test_agreement"],
            **export.get("peer_test_agreements", {PEER_INT8: export["peer_test_agreement"]}),
        },
        "machine": {
            "cpu": baseline["cpu"],
            "threads": baseline["threads"],
            "seq_length": baseline["seq_length"],
        },
        "data": baseline["data"],
        "reload": export["reload"],
        "stages": run.stage_times(),
        "files": {
            "model": str(run.path / MODEL),
            "deployed": str(run.path / export["files"].get("deployed", ONNX)),
            "summary": str(run.path / "summary.json"),
            "report": str(run.path / "report.md"),
        },
        "config": compress,
    }
