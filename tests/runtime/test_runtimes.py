"""Runtimes run slimkit's exported graphs: the same outputs on every engine, one registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.cli._main import main
from slimkit.errors import MissingDependencyError
from slimkit.measure import cpu_info
from slimkit.quantize import Int8StaticConfig, OrtModule, export_onnx, quantize
from slimkit.runtime import (
    DEFAULT_CHANNEL_MULTIPLE,
    RUNTIMES,
    ChannelMultiples,
    Runtime,
    available_runtimes,
    channel_multiple,
    register_runtime,
)
from slimkit.search import CompressConfig, backends
from slimkit.search._config import check_runtimes
from slimkit.testing import random_splits, seeded_model

pytest.importorskip("onnxruntime")
openvino = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """seed-cnn-slim as an fp32 graph and as slimkit's int8 QDQ graph."""
    folder = tmp_path_factory.mktemp("graphs")
    model = seeded_model("seed-cnn-slim", seed=0).eval()
    splits = random_splits()
    example = splits.example_input(1)
    q = quantize(model, Int8StaticConfig(calib_batches=2), calib_data=splits, progress=False)
    return {
        "fp32": export_onnx(model, folder / "fp32.onnx", example),
        "int8": export_onnx(q, folder / "int8.onnx", example),
    }


def test_the_registry_lists_both_runtimes_and_feeds_the_backend_choices() -> None:
    assert {"onnxruntime", "openvino"} <= set(RUNTIMES.names())
    assert available_runtimes() == ["onnxruntime", "openvino"]
    assert backends() == ("auto", "onnxruntime", "openvino", "torch")
    assert CompressConfig().backend == "auto"
    assert CompressConfig().runtimes() == ["onnxruntime", "openvino"]
    assert CompressConfig(backend="openvino").runtimes() == ["openvino"]
    assert (
        CompressConfig(backend="torch").runtimes() == []
        and not CompressConfig(backend="torch").int8
    )
    with pytest.raises(ValueError, match="backend must be one of"):
        CompressConfig(backend="tensorrt")


def test_openvino_computes_what_onnxruntime_computes(graphs: dict[str, Path]) -> None:
    x = torch.rand(16, 1, 28, 28)
    for precision, tolerance in (("fp32", 1e-4), ("int8", 0.5)):
        ort = OrtModule(graphs[precision], threads=1)(x)
        ov = RUNTIMES.get("openvino").load(graphs[precision], 1)(x)
        assert ov.shape == ort.shape == (16, 10)
        # fp32 in f32 (not bf16): the same numbers; int8: the same graph, rounded alike
        # except at ties, so the logits agree to a fraction of their spread.
        assert float((ov - ort).abs().max()) <= tolerance * float(ort.std()), precision
    agree = (ov.argmax(1) == ort.argmax(1)).float().mean()
    assert agree >= 0.9


def test_openvino_ir_is_written_and_reloads(graphs: dict[str, Path], tmp_path: Path) -> None:
    files = RUNTIMES.get("openvino").save(graphs["int8"], tmp_path)
    assert [f.name for f in files] == ["model.xml", "model.bin"]
    assert all(f.stat().st_size > 0 for f in files)
    x = torch.rand(4, 1, 28, 28)
    from_ir = RUNTIMES.get("openvino").load(files[0], 1)(x)
    from_onnx = RUNTIMES.get("openvino").load(graphs["int8"], 1)(x)
    assert torch.equal(from_ir, from_onnx)
    assert RUNTIMES.get("onnxruntime").save(graphs["int8"], tmp_path) == []


def test_a_missing_runtime_is_refused_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Runtime, "available", lambda self: self.name != "openvino")
    with pytest.raises(MissingDependencyError, match=r"slimkit\[openvino\]"):
        check_runtimes(CompressConfig(backend="openvino"))
    check_runtimes(CompressConfig(backend="auto"))  # ONNX Runtime is still there
    assert CompressConfig().runtimes() == ["onnxruntime"]
    monkeypatch.setattr(Runtime, "available", lambda self: False)
    with pytest.raises(MissingDependencyError, match="found no runtime"):
        check_runtimes(CompressConfig(backend="auto"))
    check_runtimes(CompressConfig(backend="torch"))  # eager needs none


def test_a_registered_runtime_becomes_a_backend_choice() -> None:
    extra = Runtime(
        name="test-engine",
        module="onnxruntime",
        extra="onnx",
        load=lambda path, threads: OrtModule(path, threads),
        save=lambda graph, directory: [],
        kernel_times=lambda graph, batch, threads: [],
    )
    register_runtime(extra)
    try:
        assert "test-engine" in backends()
        assert CompressConfig(backend="test-engine").runtimes() == ["test-engine"]
        # declaring no channel multiples keeps the multiple compress always used
        assert CompressConfig(backend="test-engine").channel_multiple == DEFAULT_CHANNEL_MULTIPLE
    finally:
        RUNTIMES._entries.pop("test-engine")


def test_profile_measures_the_deployed_graph_on_openvino(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    splits = random_splits()
    model = seeded_model("seed-cnn-slim", seed=1).eval()
    q = quantize(model, Int8StaticConfig(calib_batches=2), calib_data=splits, progress=False)
    artifact = slimkit.save(q, tmp_path / "q.safetensors")
    code = main(
        [
            "profile", str(artifact), "--backend", "openvino", "--no-accuracy", "--threads", "1",
            "--data", "fashion-mnist", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "openvino"
    assert result["bytes"] == (tmp_path / "q.onnx").stat().st_size
    assert result["latency_ms_b64"] > 0


def test_layer_times_map_each_runtimes_kernels_to_modules(graphs: dict[str, Path]) -> None:
    from slimkit.runtime import layer_times

    modules = {"conv1", "conv2", "fc1", "fc2"}
    for runtime in ("onnxruntime", "openvino"):
        times = layer_times(runtime, graphs["int8"], batch=8, threads=1)
        # Every int8 layer is found under its module name; ONNX Runtime fuses the stem's
        # quantization into its input, OpenVINO times it too.
        assert {"conv2", "fc1"} <= set(times) <= modules, runtime
        assert all(ms > 0 for ms in times.values()), runtime


def test_each_runtime_declares_the_channel_multiples_its_kernels_want() -> None:
    # benchmarks/channel_multiples.py (AVX-512 VNNI, batch 64): int8 wants 8 on both; fp32
    # ONNX Runtime works on MLAS's NCHWc blocks (16 channels with AVX-512, else 8).
    ort = RUNTIMES.get("onnxruntime").channel_multiples
    ov = RUNTIMES.get("openvino").channel_multiples
    avx512 = cpu_info()["avx512"]
    assert (ort.of(True), ort.of(False)) == (8, 16 if avx512 else 8)
    assert (ov.of(True), ov.of(False)) == (8, 4 if avx512 else 8)
    assert channel_multiple(["onnxruntime", "openvino"], int8=True) == 8
    assert channel_multiple(["onnxruntime", "openvino"], int8=False) == max(ort.fp32, ov.fp32)
    assert channel_multiple([], int8=True) == DEFAULT_CHANNEL_MULTIPLE
    assert CompressConfig(backend="openvino", quantize=False).channel_multiple == ov.fp32


@pytest.mark.parametrize("value", [0, -8, 2.0, True])
def test_channel_multiples_are_positive_integers(value: object) -> None:
    with pytest.raises(ValueError, match=r"ChannelMultiples\.fp32 must be an integer >= 1"):
        ChannelMultiples(fp32=value)  # type: ignore[arg-type]
