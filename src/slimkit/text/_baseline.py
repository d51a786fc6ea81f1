"""The baseline stage: the original encoder's embeddings and deployments, measured once.

It writes into ``RUN_DIR/baseline/``: the original's validation and test embeddings (the
reference of every agreement), its fp32 ONNX graph, slimkit's int8 of it (per-channel
weights: the unpruned candidate's int8 form), ONNX Runtime's ``quantize_dynamic`` with its
defaults (the int8 peer) and, when OpenVINO and NNCF are installed, NNCF's int8 on OpenVINO
(the other int8 peer, also the unpruned candidate's OpenVINO int8 form). Latency at batch 1
and 32 of fp32 eager PyTorch, fp32 ONNX Runtime, fp32 OpenVINO, the peers and slimkit's int8
is timed interleaved in one process. The peers are measured whatever ``backend`` is: they are
what a user would run instead.
"""

from __future__ import annotations

from typing import Any

from ..measure import cpu_info
from ..models import layer_widths
from ._bench import Runner, eager, latency_table
from ._openvino import (
    calibration_batches,
    graph_bytes,
    nncf_available,
    openvino_available,
    quantize_openvino,
)
from ._records import ONNXRUNTIME, OPENVINO, UNPRUNED, CandidateRecord, FormResult, runtime_of
from ._runctx import Context, save_embeddings
from ._runtime import export_onnx, quantize_onnx, quantize_onnx_defaults

FOLDER = "baseline"
#: Names of the original's deployments in latency tables and the summary.
EAGER, ORT_FP32, PEER_INT8, OURS_INT8, OV_FP32, PEER_OV_INT8 = (
    "teacher_fp32_eager",
    "teacher_fp32_ort",
    "teacher_int8_ort",
    "unpruned_int8_ort",
    "teacher_fp32_ov",
    "teacher_int8_ov",
)
#: The original's deployments a user would pick instead of slimkit (those measured).
PEERS = (EAGER, ORT_FP32, PEER_INT8, OV_FP32, PEER_OV_INT8)


def params(encoder: Any) -> int:
    return sum(p.numel() for p in encoder.parameters())


def run_baseline(ctx: Context) -> None:
    """Measure the original (skipped when the stage is done)."""
    if ctx.run.done(FOLDER):
        return
    teacher, splits, length = ctx.teacher, ctx.splits, ctx.length
    folder = ctx.path / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    ctx.log(
        f"baseline: embedding {len(splits.val)} validation and {len(splits.eval)} test "
        f"sentences, exporting the original to ONNX"
    )
    with ctx.run.stage(FOLDER, {}) as out:
        files = {
            "teacher_embeddings": f"{FOLDER}/teacher_embeddings.safetensors",
            "fp32": f"{FOLDER}/teacher-fp32.onnx",
            "peer_int8": f"{FOLDER}/peer-int8.onnx",
        }
        embeddings = {
            "val": teacher.encode(splits.val, max_length=length),
            "test": teacher.encode(splits.eval, max_length=length),
        }
        save_embeddings(ctx.path / files["teacher_embeddings"], embeddings)
        ctx.reference = embeddings
        export_onnx(teacher, ctx.path / files["fp32"])
        quantize_onnx_defaults(ctx.path / files["fp32"], ctx.path / files["peer_int8"])
        sessions = {
            ORT_FP32: ctx.session(files["fp32"]),
            PEER_INT8: ctx.session(files["peer_int8"]),
        }
        if openvino_available():
            sessions[OV_FP32] = ctx.session(files["fp32"], OPENVINO)
        if nncf_available():
            files["openvino_int8"] = f"{FOLDER}/teacher-int8-openvino.xml"
            calibration = calibration_batches(teacher, splits.train, length)
            quantize_openvino(
                ctx.path / files["fp32"], ctx.path / files["openvino_int8"], calibration
            )
            sessions[PEER_OV_INT8] = ctx.session(files["openvino_int8"], OPENVINO)
        if ctx.cfg.quantize and ONNXRUNTIME in ctx.runtimes:
            files["int8"] = f"{FOLDER}/teacher-int8.onnx"
            quantize_onnx(ctx.path / files["fp32"], ctx.path / files["int8"])
            sessions[OURS_INT8] = ctx.session(files["int8"])
        runners: dict[str, Runner] = {EAGER: eager(teacher), **sessions}
        ctx.log(f"baseline: timing {', '.join(runners)} at batch 1 and 32 ({length} tokens)")
        latency = latency_table(
            runners,
            teacher,
            splits.val,
            length=length,
            rounds=ctx.cfg.measure.rounds,
            threads=ctx.threads,
        )
        quality = {name: ctx.agreement(session, "val") for name, session in sessions.items()}
        unpruned = _unpruned(ctx, files, latency, quality)
        out.update(
            threads=ctx.threads,
            seq_length=length,
            cpu=cpu_info(),
            data=splits.describe(),
            teacher={"params": params(teacher), "layers": layer_widths(teacher.backbone)},
            latency_ms=latency,
            val_agreement=quality,
            unpruned=unpruned.to_dict(),
            files=files,
        )
    _log_baseline(ctx, latency, quality)


def _unpruned(
    ctx: Context,
    files: dict[str, str],
    latency: dict[str, dict[str, float]],
    quality: dict[str, dict[str, float]],
) -> CandidateRecord:
    """The unpruned encoder as a candidate: its fp32 graph and the int8 forms of it, on each
    runtime the result may deploy on."""
    yardstick = latency[ORT_FP32]["b32"]
    forms = []
    for form, name, graph in (
        ("fp32", ORT_FP32, "fp32"),
        ("int8", OURS_INT8, "int8"),
        (f"fp32-{OPENVINO}", OV_FP32, "fp32"),
        (f"int8-{OPENVINO}", PEER_OV_INT8, "openvino_int8"),
    ):
        # The OpenVINO int8 peer is measured even without quantize; it is a form only with it.
        wanted = runtime_of(form) in ctx.runtimes and (ctx.cfg.quantize or "int8" not in form)
        if not wanted or graph not in files or name not in latency:
            continue
        q, ms = quality[name], latency[name]["b32"]
        forms.append(
            FormResult(
                form=form,
                mean_cosine=q["mean_cosine"],
                p5_cosine=q["p5_cosine"],
                top10_overlap=q["top10_overlap"],
                ms_b32=ms,
                relative_b32=ms / yardstick,
                bytes=graph_bytes(ctx.path / files[graph]),
                graph=files[graph],
            )
        )
    return CandidateRecord(
        label=UNPRUNED,
        index=0,
        params=params(ctx.teacher),
        layers=layer_widths(ctx.teacher.backbone),
        forms=tuple(forms),
    )


def _log_baseline(
    ctx: Context, latency: dict[str, dict[str, float]], quality: dict[str, dict[str, float]]
) -> None:
    for name, times in latency.items():
        cosine = quality.get(name, {}).get("mean_cosine", 1.0)
        ctx.log(
            f"  {name}: b1 {times['b1']:.2f} ms, b32 {times['b32']:.2f} ms, validation "
            f"cosine {cosine:.4f}"
        )
