"""compress end to end on a small trained model and a real Fashion-MNIST slice."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from slimkit import AccuracyBudgetError, Splits, load
from slimkit.search import CompressConfig, compress
from slimkit.train import TrainConfig

PROFILE_KEYS = {
    "test_accuracy", "val_accuracy", "params", "nonzero_params", "macs", "bytes",
    "latency_ms_b1", "latency_ms_b64", "threads", "device", "backend",
}  # fmt: skip

FAST = {
    "trials": 2,
    "recover": "ce",
    "recover_train": TrainConfig(epochs=1),
    "sensitivity_images": 256,
}


def test_budget_is_honoured_and_the_run_is_complete(
    trained: nn.Module, small_splits: Splits, tmp_path: Path
) -> None:
    cfg = CompressConfig(max_drop=1.0, goal="size", latency_threads=1, **FAST)
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=None)

    assert set(summary["baseline"]) == PROFILE_KEYS == set(summary["result"])
    budget = summary["budget"]
    assert summary["baseline"]["val_accuracy"] - summary["result"]["val_accuracy"] <= 1.0
    # Within budget with the margin: the drop plus one standard error of it.
    assert budget["margin_se"] == 1.0 and budget["val_drop_se"] > 0
    assert budget["val_drop"] + budget["val_drop_se"] <= 1.0 + 1e-9
    assert summary["result"]["backend"] == "onnxruntime"
    # int8 weights alone make it ~4x smaller; sparsity and pruning add to that.
    assert summary["result"]["bytes"] * 3.5 < summary["baseline"]["bytes"]
    assert [s["name"] for s in summary["stages"]] == [
        "baseline", "sensitivity", "plan", "recovery", "search", "polish", "verify", "export",
        "report",
    ]  # fmt: skip
    assert summary["recovery"] == {"method": "ce"}  # configured, not measured
    files = summary["files"]
    for key in ("artifact", "onnx", "report", "summary"):
        assert Path(files[key]).is_file(), key
    on_disk = json.loads(Path(files["summary"]).read_text())
    assert on_disk["result"] == summary["result"]
    # The exported artifact reloads and reproduces the validation accuracy the run reported.
    from slimkit import evaluate_accuracy
    from slimkit.quantize import OrtModule

    reloaded = OrtModule(files["onnx"], threads=1)
    assert evaluate_accuracy(reloaded, small_splits.val) == summary["result"]["val_accuracy"]
    assert load(files["artifact"]) is not None
    html = Path(files["report"]).read_text()
    assert html.count("data:image/png;base64,") == 5  # with the int8 sensitivity
    trials = json.loads((tmp_path / "run" / "trials.json").read_text())
    assert len(trials) == 2


def test_impossible_budget_raises_with_the_best_plan(
    trained: nn.Module, small_splits: Splits, tmp_path: Path
) -> None:
    cfg = CompressConfig(
        max_drop=0.0,
        goal="macs",
        quantize=False,
        min_macs_keep=0.1,
        max_macs_keep=0.15,
        trials=2,
        recover_train=TrainConfig(epochs=0),
        sensitivity_images=256,
    )
    with pytest.raises(AccuracyBudgetError, match=r"within 0\.0 points") as info:
        compress(trained, small_splits, cfg, tmp_path / "run", log=None)
    best = info.value.best
    assert isinstance(best, dict) and best["drop"] > 0
    assert Path(best["artifact"]).is_file()


def test_existing_run_needs_resume_and_resuming_with_other_options_redoes_what_they_feed(
    trained: nn.Module, small_splits: Splits, tmp_path: Path
) -> None:
    from slimkit import SlimkitError

    run = tmp_path / "run"
    cfg = CompressConfig(max_drop=50.0, goal="macs", quantize=False, **FAST)
    compress(trained, small_splits, cfg, run, log=None)
    with pytest.raises(SlimkitError, match="--resume"):
        compress(trained, small_splits, cfg, run, log=None)
    state = json.loads((run / "state.json").read_text())
    curves = state["stages"]["sensitivity"]

    # More trials: the same study goes on; the measured stages stay as they were.
    lines: list[str] = []
    more = dataclasses.replace(cfg, trials=3)
    again = compress(trained, small_splits, more, run, resume=True, log=lines.append)
    assert again["result"]["macs"] < again["baseline"]["macs"]
    assert any("redoing search, polish, verify, export, report" in line for line in lines), lines
    trials = json.loads((run / "trials.json").read_text())
    assert [t["number"] for t in trials] == [0, 1, 2]
    state = json.loads((run / "state.json").read_text())
    assert state["stages"]["sensitivity"] == curves
    assert state["study"]["name"] == "compress"

    # Another recovery schedule: trials would be built differently, so a new study starts
    # (its trials in trials-2/) while the baseline, curves and plan are kept.
    longer = dataclasses.replace(more, recover_train=TrainConfig(epochs=2), trials=1)
    compress(trained, small_splits, longer, run, resume=True, log=None)
    state = json.loads((run / "state.json").read_text())
    assert state["stages"]["sensitivity"] == curves
    assert state["study"]["name"] == "compress-2"
    assert [t["number"] for t in json.loads((run / "trials.json").read_text())] == [0]
    assert (run / "trials-2" / "0000").is_dir() and (run / "trials" / "0002").is_dir()
    assert state["config"]["compress"]["recover_train"]["epochs"] == 2


def test_polish_recovers_the_chosen_plan_longer_and_verify_prefers_it(
    trained: nn.Module, small_splits: Splits, tmp_path: Path
) -> None:
    cfg = CompressConfig(
        max_drop=50.0, goal="macs", quantize=False, polish_epochs=1, polish_trials=1, **FAST
    )
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=None)

    assert [s["name"] for s in summary["stages"]][3:6] == ["recovery", "search", "polish"]
    polished = json.loads((tmp_path / "run" / "polished.json").read_text())
    assert len(polished) == 1 and polished[0]["recover_epochs"] == 2
    trials = {t["number"]: t for t in json.loads((tmp_path / "run" / "trials.json").read_text())}
    original = trials[polished[0]["polished_from"]]
    # The same plan, pruned the same way, recovered for longer.
    assert polished[0]["structured"]["widths"] == original["structured"]["widths"]
    assert polished[0]["macs"] == original["macs"]
    # Within budget, the polished plan replaces its original among the candidates.
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["stages"]["verify"]["output"]["chosen"]["number"] == polished[0]["number"]
    assert summary["result"]["val_accuracy"] == polished[0]["val_accuracy"]
    assert "| " + polished[0]["number"] + " |" in (tmp_path / "run" / "report.md").read_text()

    # Redone with other polish options, the stage reuses what it already polished.
    lines: list[str] = []
    wider = dataclasses.replace(cfg, polish_trials=2)
    again = compress(trained, small_splits, wider, tmp_path / "run", resume=True, log=lines.append)
    assert any("redoing polish, verify, export, report" in line for line in lines), lines
    assert any("was polished for 2 epochs before" in line for line in lines), lines
    assert again["result"]["val_accuracy"] == summary["result"]["val_accuracy"]


def test_latency_goal_deploys_the_faster_precision_it_measured(
    trained: nn.Module, small_splits: Splits, tmp_path: Path
) -> None:
    cfg = CompressConfig(
        max_drop=2.0, goal="latency", backend="onnxruntime", latency_threads=1,
        **{**FAST, "trials": 1},
    )  # fmt: skip
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=None)

    trials = json.loads((tmp_path / "run" / "trials.json").read_text())
    for record in trials:
        measured = record["deployments"]
        assert [m["precision"] == "fp32" for m in measured] == [False, True]
        assert measured[0]["precision"].startswith(("int8", "qat"))
        within = [m for m in measured if m["drop"] <= cfg.max_drop]
        chosen = min(within, key=lambda m: (m["ms_b1"] * m["ms_b64"]) ** 0.5)
        assert record["precision"] == f"{chosen['precision']} (onnxruntime)"
        if chosen["precision"] == "fp32":
            assert record["onnx"].endswith("model-fp32.onnx")
        else:
            assert not (Path(record["onnx"]).parent / "model-fp32.onnx").exists()
    from slimkit import evaluate_accuracy
    from slimkit.quantize import OrtModule

    deployed = OrtModule(summary["files"]["onnx"], threads=1)
    assert evaluate_accuracy(deployed, small_splits.val) == summary["result"]["val_accuracy"]


@pytest.mark.parametrize(
    ("fastest", "runtime", "precision"),
    [("openvino-fp32", "openvino", "fp32"), ("onnxruntime-int8", "onnxruntime", "int8")],
)
def test_auto_backend_deploys_the_runtime_the_timer_says_is_fastest(
    trained: nn.Module,
    small_splits: Splits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fastest: str,
    runtime: str,
    precision: str,
) -> None:
    # A stand-in timer: the (runtime, precision) pair named ``fastest`` takes 1 ms, every
    # other deployment 5 ms, the original 50 ms. The choice must follow the timings.
    pytest.importorskip("openvino")
    from slimkit.runtime import OpenVinoModule
    from slimkit.search import _export, _stages, _trial, _verify

    def kind(runner: object) -> str:
        path = str(getattr(runner, "path", ""))
        engine = "openvino" if isinstance(runner, OpenVinoModule) else "onnxruntime"
        return f"{engine}-{'fp32' if path.endswith('fp32.onnx') else 'int8'}" if path else "eager"

    def timer(runners: list[object], x: object, rounds: int = 15) -> list[float]:
        return [1.0 if kind(r) == fastest else 50.0 if kind(r) == "eager" else 5.0 for r in runners]

    for module in (_trial, _stages, _verify, _export):
        monkeypatch.setattr(module, "interleaved_latency", timer)
    cfg = CompressConfig(max_drop=5.0, goal="latency", latency_threads=1, **{**FAST, "trials": 1})
    assert cfg.backend == "auto"
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=None)

    assert summary["result"]["backend"] == runtime
    assert summary["plan"]["precision"].startswith("fp32" if precision == "fp32" else "int8")
    assert summary["plan"]["precision"].endswith(f"({runtime})")
    deployment = summary["deployment"]
    assert deployment["runtime"] == runtime
    assert len(deployment["alternatives"]) == 3
    assert all(a["slower_than_chosen"] == 5.0 for a in deployment["alternatives"])
    assert all(a["slower_than_chosen_b1"] == 5.0 for a in deployment["alternatives"])
    if runtime == "openvino":
        assert Path(summary["files"]["openvino.xml"]).is_file()
        assert Path(summary["files"]["openvino.bin"]).is_file()
    else:
        assert "openvino.xml" not in summary["files"]


def test_a_runtime_fast_at_batch_64_only_does_not_win(
    trained: nn.Module, small_splits: Splits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenVINO int8 takes 1 ms at batch 64 but 20 ms at batch 1 (a fixed cost per call);
    # ONNX Runtime int8 takes 2 ms at both: the geometric mean (4.5 vs 2) picks ONNX Runtime.
    pytest.importorskip("openvino")
    from slimkit.runtime import OpenVinoModule
    from slimkit.search import _export, _stages, _trial, _verify

    def timer(runners: list[object], x: Any, rounds: int = 15) -> list[float]:
        def ms(runner: object) -> float:
            path = str(getattr(runner, "path", ""))
            if not path:
                return 50.0  # the eager original
            if path.endswith("fp32.onnx"):
                return 10.0
            if isinstance(runner, OpenVinoModule):
                return 1.0 if x.shape[0] == 64 else 20.0
            return 2.0

        return [ms(r) for r in runners]

    for module in (_trial, _stages, _verify, _export):
        monkeypatch.setattr(module, "interleaved_latency", timer)
    cfg = CompressConfig(max_drop=5.0, goal="latency", latency_threads=1, **{**FAST, "trials": 1})
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=None)
    assert summary["result"]["backend"] == "onnxruntime"
    openvino = next(
        a for a in summary["deployment"]["alternatives"]
        if a["runtime"] == "openvino" and a["precision"] != "fp32"
    )  # fmt: skip
    assert (openvino["slower_than_chosen"], openvino["slower_than_chosen_b1"]) == (0.5, 10.0)


def test_a_plan_that_rounds_to_an_earlier_structure_reuses_its_trial(
    trained: nn.Module, small_splits: Splits, tmp_path: Path
) -> None:
    # Every fraction below the smallest structure round_to=8 allows maps to that structure.
    cfg = CompressConfig(
        max_drop=50.0, goal="macs", quantize=False, round_to=8, **{**FAST, "trials": 5}
    )
    compress(trained, small_splits, cfg, tmp_path / "run", log=None)

    trials = {r["number"]: r for r in json.loads((tmp_path / "run" / "trials.json").read_text())}
    reused = [r for r in trials.values() if "same_plan_as" in r]
    assert reused, [r["params"] for r in trials.values()]
    for record in reused:
        twin = trials[record["same_plan_as"]]
        assert record["artifact"] == twin["artifact"]
        assert record["val_accuracy"] == twin["val_accuracy"]
        assert record["params"] != twin["params"]


def test_depth_pruning_removes_residual_blocks_and_the_result_reloads(
    small_splits: Splits, tmp_path: Path
) -> None:
    import slimkit
    from slimkit.testing import seeded_model

    model = seeded_model("resnet20")
    slimkit.train(model, small_splits, slimkit.TrainConfig(epochs=1, lr=3e-3), progress=False)
    cfg = CompressConfig(
        max_drop=50.0, goal="macs", quantize=False, min_macs_keep=0.3, **{**FAST, "trials": 1}
    )
    lines: list[str] = []
    summary = compress(model, small_splits, cfg, tmp_path / "run", log=lines.append)

    state = json.loads((tmp_path / "run" / "state.json").read_text())
    blocks = state["stages"]["plan"]["output"]["block_curves"]
    assert [c["key"] for c in blocks][:3] == ["layer1.0", "layer1.1", "layer1.2"]
    assert len(blocks) == 7
    assert any("removing each of 7 residual blocks alone" in line for line in lines), lines
    # Under a loose budget the plan's deep cut takes whole blocks as well as channels.
    removed = summary["plan"].get("removed_blocks") or []
    trial = json.loads((tmp_path / "run" / "trials.json").read_text())[0]
    assert trial["structured"]["removed_blocks"], trial["structured"]
    assert removed == trial["structured"]["removed_blocks"]
    reloaded = load(summary["files"]["artifact"])
    assert all(isinstance(reloaded.get_submodule(name), nn.Identity) for name in removed)
    from slimkit import evaluate_accuracy

    assert evaluate_accuracy(reloaded, small_splits.val) == summary["result"]["val_accuracy"]
    html = Path(summary["files"]["report"]).read_text()
    assert html.count("data:image/png;base64,") == 5  # the block sensitivities too
    assert f"removes {len(removed)} residual block(s) whole" in html


def test_latency_cost_plans_on_measured_layer_times(
    trained: nn.Module, small_splits: Splits, tmp_path: Path
) -> None:
    cfg = CompressConfig(
        max_drop=50.0,
        goal="latency",
        structure_cost="latency",
        backend="onnxruntime",  # one runtime: which one prices the layers is not timed luck
        latency_threads=1,
        **{**FAST, "trials": 1},
    )
    lines: list[str] = []
    summary = compress(trained, small_splits, cfg, tmp_path / "run", log=lines.append)

    state = json.loads((tmp_path / "run" / "state.json").read_text())
    plan = state["stages"]["plan"]["output"]
    weighted = {n for n, m in trained.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    # Int8 layers all map back to their module; a float first layer (fused with its ReLU
    # under another name) may not, and then costs the average time per MAC.
    assert weighted - set(plan["int8_keep_float"]) <= set(plan["layer_ms"]) <= weighted
    assert min(plan["layer_ms"].values()) > 0
    assert plan["layer_ms_runtime"] == "onnxruntime"
    curves = state["stages"]["sensitivity"]["output"]["curves"]
    for curve in curves:
        kept = plan["latency_fractions"][curve["key"]]
        assert len(kept) == len(curve["ratios"]) and 0 < kept[-1] <= kept[0] <= 1
        # A ratio that rounds to no cut keeps exactly all the time (nothing is profiled); a
        # real cut's measured time is never predicted above the unpruned layer's.
        assert all(k == 1 for k, m in zip(kept, curve["macs_fraction"], strict=True) if m == 1)
    deepest = [plan["latency_fractions"][c["key"]][-1] for c in curves]
    assert min(deepest) < 1  # the widest cuts save measurable time
    assert any("time per layer" in line for line in lines), lines
    # Every probed cut that changed a layer was profiled: its layers carry measured points.
    table = plan["latency_table"]
    assert table["runtime"] == "onnxruntime"
    assert set(table["layers"]) == set(plan["layer_ms"])
    cut = [c["key"] for c in curves if min(c["macs_fraction"]) < 1 and c["key"] in plan["layer_ms"]]
    assert cut and all(table["layers"][key]["points"]["out"] for key in cut)
    probes = sum(len(c["ratios"]) for c in curves)
    assert any(f"pricing {probes} channel cuts" in line for line in lines), lines
    trial = json.loads((tmp_path / "run" / "trials.json").read_text())[0]
    assert set(trial["params"]) == {"latency_keep"}
    # The trial's predicted latency fraction is what its plan aimed at (or the plan's floor).
    assert trial["structured"]["latency_fraction"] <= trial["params"]["latency_keep"] + 0.05
    assert summary["plan"]["latency_keep"] == trial["params"]["latency_keep"]
    keep = f"keep {trial['params']['latency_keep']:.0%} of the predicted int8 latency"
    assert keep in (tmp_path / "run" / "report.md").read_text()
