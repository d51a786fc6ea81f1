from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.cli import build_parser
from slimkit.cli._main import main

pytest.importorskip("onnxruntime")
LIMITS = ["--limit-train", "1024", "--limit-eval", "256"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return slimkit.save(
        slimkit.create_model("seed-cnn-slim"), tmp_path_factory.mktemp("cli") / "m.safetensors"
    )


def test_quantize_then_profile_the_deployed_graph(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.safetensors"
    argv = ["quantize", str(artifact), "--scheme", "int8-static", "--out", str(out), "--json"]
    assert main([*argv, "--calib-batches", "2", "--device", "cpu", *LIMITS]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["onnx"] == str(out.with_suffix(".onnx")) and out.with_suffix(".onnx").is_file()
    profile_argv = ["profile", str(out), "--backend", "onnxruntime", "--json", "--threads", "1"]
    assert main([*profile_argv, "--no-accuracy", *LIMITS]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert (
        main(["profile", str(artifact), "--json", "--threads", "1", "--no-accuracy", *LIMITS]) == 0
    )
    float_profile = json.loads(capsys.readouterr().out)
    assert set(deployed) == set(float_profile)
    assert (
        deployed["backend"] == "onnxruntime"
        and deployed["bytes"] == out.with_suffix(".onnx").stat().st_size
    )


def test_bad_exclusion_is_one_line_error(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["quantize", str(artifact), "--scheme", "int8-static", "--exclude", "nope"]
    code = main([*argv, "--out", str(tmp_path / "q.safetensors"), *LIMITS])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("slimkit: error: ") and "Traceback" not in err


def test_scheme_choices_are_listed() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["quantize", "a", "--scheme", "int3", "--out", "b"])


def test_sensitivity_prints_a_ranked_table(
    artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["quantize", str(artifact), "--sensitivity", "--sensitivity-batches", "1"]
    assert main([*argv, "--calib-batches", "1", "--device", "cpu", *LIMITS]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["rank", "layer", "drop", "(points)"]
    assert [line.split()[1] for line in out[3:]] and len(out[3:]) == 4


def test_sensitivity_json_is_sorted_worst_first(
    artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["quantize", str(artifact), "--sensitivity", "--json", "--exclude", "fc2"]
    assert main([*argv, "--sensitivity-batches", "1", "--calib-batches", "1", *LIMITS]) == 0
    result = json.loads(capsys.readouterr().out)
    drops = [r["accuracy_drop"] for r in result["layers"]]
    assert drops == sorted(drops, reverse=True) and result["images"] == 256
    assert {r["layer"] for r in result["layers"]} == {"conv1", "conv2", "fc1"}
    assert [p.name for p in artifact.parent.iterdir()] == [artifact.name]  # nothing written


def test_scheme_and_out_are_required_without_sensitivity(
    artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["quantize", str(artifact), *LIMITS]) == 2
    assert "--scheme and --out" in capsys.readouterr().err


@pytest.mark.slow
def test_torch_backend_reports_the_compiled_int8_accuracy(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torchao")
    out = tmp_path / "q.safetensors"
    argv = ["quantize", str(artifact), "--scheme", "int8-static", "--backend", "torch"]
    assert main([*argv, "--out", str(out), "--json", "--calib-batches", "2", *LIMITS]) == 0
    result = json.loads(capsys.readouterr().out)
    assert abs(result["torch_int8_test_accuracy"] - result["test_accuracy"]) <= 1.0
    assert "onnx" not in result and not out.with_suffix(".onnx").exists()
