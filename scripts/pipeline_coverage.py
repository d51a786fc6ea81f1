"""Deploy-path coverage: torchvision and timm classifiers through prune → int8 → ONNX Runtime.

For every torchvision classifier and a spread of timm families (random weights, all-zero weight
matrices such as torchvision's ViT heads drawn from N(0, 0.02) so that the output depends on the
input; batch 32 of noise at the model's smallest sensible input), each in its own process under a
time cap:

1. structured pruning to half the MACs (``StructuredConfig(target_macs=0.5)``);
2. int8 static quantization for ONNX Runtime (``slimkit.quantize``, minmax, 2 calibration
   batches of noise);
3. ``slimkit.save`` → the ``.onnx`` beside the artifact → an ONNX Runtime session.

A model is *ok* when the int8 graph runs, ONNX Runtime's int8 kernels carry at least half of the
pruned model's MACs (each Conv/Gemm/MatMul layer's MACs, counted in PyTorch, attributed to the
kernel ONNX Runtime runs it as), and the int8 output agrees with slimkit's own simulation of it:
the same QDQ graph executed op by op without fusions (float math on quantized values), top-1
agreement ≥ 0.9 or SQNR ≥ 20 dB, or (for graphs that amplify rounding, such as deep random-weight
transformers) an SQNR at most 3 dB under the graph's own noise floor: the SQNR between the
reference's outputs on the input and on the input moved by half a quantization step. *Refused* when slimkit stopped with its own one-line error
(``SlimkitError``); anything else is *broken*.

Usage:
    .venv/bin/python scripts/pipeline_coverage.py [--out docs/pipeline_coverage.md]
        [--only torchvision:resnet18 timm:vit_tiny_patch16_224] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: One timm model per family (small variants), chosen to span the architectures timm ships.
TIMM_MODELS = [
    "resnet18", "resnet10t", "resnet26d", "resnext26ts", "seresnext26d_32x4d", "resnest14d",
    "res2net50_26w_4s", "regnetx_002", "regnety_002", "regnetz_b16", "rexnet_100",
    "mobilenetv2_050", "mobilenetv3_small_050", "mobilenetv4_conv_small", "mnasnet_050",
    "fbnetc_100", "spnasnet_100", "tinynet_e", "lcnet_050", "ghostnet_050", "ghostnetv2_100",
    "efficientnet_b0", "efficientnet_lite0", "efficientnetv2_rw_t", "tf_efficientnetv2_b0",
    "mixnet_s", "hardcorenas_a", "densenet121", "dla34", "dpn48b", "vovnet39a", "ese_vovnet19b_dw",
    "cspresnet50", "cspdarknet53", "darknet17", "hrnet_w18_small", "selecsls42b", "tresnet_m",
    "repvgg_a0", "mobileone_s0", "fastvit_t8", "efficientformer_l1", "efficientformerv2_s0",
    "levit_128s", "convnext_atto", "convnextv2_atto", "nfnet_l0", "nf_regnet_b0", "gernet_s",
    "resnetv2_50", "inception_v3", "xception41", "vgg11", "convmixer_768_32", "mobilevit_xxs",
    "mobilevitv2_050", "edgenext_xx_small", "poolformer_s12", "coatnet_nano_rw_224",
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "cait_xxs24_224", "beit_base_patch16_224",
    "swin_tiny_patch4_window7_224", "pvt_v2_b0", "twins_svt_small", "crossvit_tiny_240",
    "mixer_b16_224", "resmlp_12_224", "gmlp_ti16_224", "tiny_vit_5m_224", "maxvit_nano_rw_256",
    "efficientvit_b0", "repghostnet_050", "hgnetv2_b0", "inception_next_atto",
]  # fmt: skip
#: Kernels of ONNX Runtime that compute a Conv/Gemm/MatMul in integers.
INT8_LAYER_KERNELS = ("QLinearConv", "QGemm", "QLinearMatMul", "MatMulIntegerToFloat")
BATCH = 32
MIN_MAC_SHARE = 0.5
MIN_AGREEMENT = 0.9
MIN_SQNR_DB = 20.0
#: Deep random-weight transformers amplify a one-step rounding difference layer after layer:
#: there the kernels must stay within this margin of the graph's own noise floor.
FLOOR_MARGIN_DB = 3.0


def _randomize_zero_weights(model: Any) -> None:
    """Draw every all-zero weight matrix from N(0, 0.02): torchvision's ViT heads start at zero,
    which makes a random-weight model's output independent of its input."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight") and param.dim() >= 2 and not param.any():
                param.normal_(0.0, 0.02)


def _timm_case(name: str) -> tuple[Any, int]:
    """A timm model and the smallest side it runs at: built for 32 pixels if it runs there,
    else at its default input size."""
    import timm
    import torch

    cfg = timm.get_pretrained_cfg(name)
    default = int(cfg.input_size[-1]) if cfg is not None else 224
    for kwargs, side in (({"img_size": 32}, 32), ({}, 32), ({}, default)):
        try:  # no img_size argument, or no 32-pixel grid for the model
            model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
            with torch.no_grad():
                model(torch.randn(1, 3, side, side))
            return model, side
        except Exception:
            continue
    return timm.create_model(name, pretrained=False, num_classes=10).eval(), default


def _build(source: str) -> tuple[Any, Any]:
    """The model (eval, random weights, seeded) and a noise batch of its smallest input."""
    import torch

    from slimkit.testing import torchvision_case

    torch.manual_seed(0)
    kind, _, name = source.partition(":")
    if kind == "torchvision":
        model, example = torchvision_case(name)
        side = example.shape[-1]
    else:
        model, side = _timm_case(name)
    _randomize_zero_weights(model)
    return model.eval(), torch.randn(BATCH, 3, side, side)


def _int8_mac_share(q: Any, pruned: Any, example: Any) -> tuple[float, dict[str, int]]:
    """The share of ``pruned``'s layer MACs that ONNX Runtime runs in int8 kernels, and the
    optimised graph's op counts."""
    from collections import Counter

    from slimkit.measure._counts import layer_macs
    from slimkit.quantize._export import layer_nodes
    from slimkit.quantize._ort_report import _source, optimized_graph

    macs = layer_macs(pruned, example[:1])
    nodes = layer_nodes(q.deployed_proto())
    optimized = optimized_graph(q.deployed_proto())
    int8_layers = set()
    for kernel in optimized.graph.node:
        source = _source(kernel.name, set(nodes))
        if source is not None and kernel.op_type in INT8_LAYER_KERNELS:
            int8_layers.add(nodes[source])
    total = sum(macs.values())
    share = sum(m for name, m in macs.items() if name in int8_layers) / max(total, 1)
    return share, dict(Counter(n.op_type for n in optimized.graph.node))


def _reference_outputs(q: Any, x: Any) -> tuple[Any, Any]:
    """The QDQ graph run op by op with ONNX Runtime's fusions off (float math on the quantized
    values: what the int8 kernels must reproduce) on ``x``, and on ``x`` moved by uniform noise
    of half an input quantization step (how far the graph's own rounding moves its output)."""
    import torch

    from slimkit.quantize._ort_calib import _plain_session

    session = _plain_session(q.deployed_proto())
    low, high = q.slimkit_quantization["ranges"]["input"]
    noisy = x + (torch.rand_like(x) - 0.5) * (high - low) / 255.0
    return tuple(torch.from_numpy(session.run(None, {"input": v.numpy()})[0]) for v in (x, noisy))


def check(source: str) -> dict[str, Any]:
    """Run the deploy path on one model; the row of the table."""
    import tempfile

    import torch

    import slimkit
    from slimkit.errors import SlimkitError
    from slimkit.quantize import OrtModule, onnx_path, quantization_report, sqnr

    row: dict[str, Any] = {"model": source}
    stage = "build"
    try:
        model, x = _build(source)
        row["input"] = list(x.shape[1:])
        stage = "prune"
        pruned = slimkit.prune(
            model, slimkit.StructuredConfig(target_macs=0.5), example_inputs=x[:1], progress=False
        )
        row["macs_before"] = slimkit.count_macs(model, x[:1])
        row["macs_after"] = slimkit.count_macs(pruned, x[:1])
        stage = "quantize"
        q = slimkit.quantize(pruned, slimkit.Int8StaticConfig(calib_batches=2), calib_data=[x, -x])
        stage = "deploy"
        with tempfile.TemporaryDirectory() as work:
            artifact = slimkit.save(q, Path(work) / "q.safetensors")
            with torch.no_grad():
                deployed = OrtModule(onnx_path(artifact))(x)
        stage = "check"
        share, ops = _int8_mac_share(q, pruned, x)
        reference, noisy_reference = _reference_outputs(q, x)
        with torch.no_grad():
            float_out = pruned(x)
        row.update(
            int8_mac_share=round(share, 3),
            agreement=float((deployed.argmax(1) == reference.argmax(1)).float().mean()),
            sqnr_db=round(sqnr(reference, deployed), 1),
            sqnr_vs_float_db=round(sqnr(float_out, deployed), 1),
            noise_floor_db=round(sqnr(reference, noisy_reference), 1),
            float_ops=len(quantization_report(q)["float_ops"]),
        )
        row["kernels"] = {k: v for k, v in ops.items() if k.startswith(("QLinear", "QGemm"))}
        matches = (
            row["agreement"] >= MIN_AGREEMENT
            or row["sqnr_db"] >= MIN_SQNR_DB
            or row["sqnr_db"] >= row["noise_floor_db"] - FLOOR_MARGIN_DB
        )
        if share < MIN_MAC_SHARE:
            row.update(status="broken", reason=f"int8 kernels carry {share:.0%} of the MACs")
        elif not matches:
            row.update(status="broken", reason="int8 output disagrees with the QDQ reference")
        else:
            row["status"] = "ok"
    except SlimkitError as err:
        row.update(status="refused", reason=f"{stage}: {str(err).splitlines()[0][:240]}")
    except Exception as err:  # the sweep's purpose is to find these
        text = (str(err).splitlines() or [""])[0][:200]
        row.update(status="broken", reason=f"{stage}: {type(err).__name__}: {text}")
    return row


def models(only: list[str] | None) -> list[str]:
    """``only``, or every torchvision classifier and :data:`TIMM_MODELS` timm has."""
    if only:
        return only
    import timm

    from slimkit.models._torchvision import torchvision_classifiers

    known = set(timm.list_models())
    return [f"torchvision:{n}" for n in sorted(torchvision_classifiers())] + [
        f"timm:{n}" for n in TIMM_MODELS if n in known
    ]


def run_one(source: str, timeout: float) -> dict[str, Any]:
    """:func:`check` in a child process (one model's memory or crash cannot touch the others)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", source],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"model": source, "status": "broken", "reason": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        reason = f"crashed (exit {proc.returncode}): {last[:200]}"
        return {"model": source, "status": "broken", "reason": reason}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = round(time.perf_counter() - start, 1)
    return dict(row)


def _macs(value: int | None) -> str:
    return f"{value / 1e6:,.1f} M" if value else "–"


def render(rows: list[dict[str, Any]], command: str) -> str:
    """The markdown page."""
    from slimkit.measure import cpu_info

    def tally(prefix: str) -> str:
        group = [r for r in rows if r["model"].startswith(prefix)]
        ok = sum(r["status"] == "ok" for r in group)
        refused = sum(r["status"] == "refused" for r in group)
        share = 100.0 * ok / max(len(group), 1)
        return f"{prefix[:-1]}: {ok} / {len(group)} ok ({share:.1f}%), {refused} refused"

    cpu = cpu_info()
    lines = [
        "# Deploy-path coverage: prune → int8 → ONNX Runtime",
        "",
        "Written by `scripts/pipeline_coverage.py` (`make pipeline-coverage`); "
        f"this table: `{command}`,",
        f"on {cpu['name']} ({cpu['cores']} cores; VNNI {'yes' if cpu['vnni'] else 'no'}, "
        f"AMX {'yes' if cpu['amx'] else 'no'}), "
        f"Python {platform.python_version()}, one thread per model.",
        "",
        "Each model: random weights (all-zero weight matrices, such as torchvision's ViT heads,",
        "drawn from N(0, 0.02)), a batch of 32 noise images at its smallest sensible input,",
        "structured pruning to half the MACs, `slimkit.quantize` int8 static (minmax),",
        "`slimkit.save`, then the `.onnx` in an ONNX Runtime session. *ok*: the int8 graph runs,",
        f"ONNX Runtime's int8 kernels carry ≥ {MIN_MAC_SHARE:.0%} of the pruned model's layer MACs,",
        "and its output agrees with the same QDQ graph run op by op without fusions (slimkit's",
        f"reference): top-1 agreement ≥ {MIN_AGREEMENT} or SQNR ≥ {MIN_SQNR_DB:.0f} dB, or an SQNR",
        f"at most {FLOOR_MARGIN_DB:.0f} dB under the reference's own noise floor (its outputs on the",
        "input vs on the input moved by half a quantization step: deep random-weight",
        "transformers amplify one-step rounding differences). *refused*: slimkit's own",
        "one-line error. *broken*: anything else. SQNR vs float is the int8 graph against the",
        "pruned float model (random weights: informative only).",
        "",
        f"**{tally('torchvision:')}; {tally('timm:')}.**",
        "",
        "| model | input | MACs before → after | int8 MAC share | agreement | SQNR dB "
        "(floor; vs float) | float ops | result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        result = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}"
        shape = "×".join(str(d) for d in r.get("input", [])) or "–"
        share = f"{r['int8_mac_share']:.0%}" if "int8_mac_share" in r else "–"
        agree = f"{r['agreement']:.2f}" if "agreement" in r else "–"
        sq = (
            f"{r['sqnr_db']} ({r['noise_floor_db']}; {r['sqnr_vs_float_db']})"
            if "sqnr_db" in r
            else "–"
        )
        macs = f"{_macs(r.get('macs_before'))} → {_macs(r.get('macs_after'))}"
        result = result.replace("|", "\\|")
        lines.append(
            f"| {r['model']} | {shape} | {macs} | {share} | {agree} | {sq} | "
            f"{r.get('float_ops', '–')} | {result} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="docs/pipeline_coverage.md")
    p.add_argument("--only", nargs="*", help="sources such as torchvision:resnet18 timm:resnet10t")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per model")
    p.add_argument("--json", help="also write the rows here (JSON lines, appended as they finish)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(check(args.child)))
        return 0
    rows = []
    for i, source in enumerate(models(args.only)):
        row = run_one(source, args.timeout)
        rows.append(row)
        print(f"[{i + 1}] {source}: {row['status']} {row.get('reason', '')}", flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    command = "python scripts/pipeline_coverage.py" + (
        f" --only {' '.join(args.only)}" if args.only else ""
    )
    Path(args.out).write_text(render(rows, command))
    broken = [r for r in rows if r["status"] == "broken"]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
