"""An artifact and its ONNX graph are written as a pair: a stale graph is refused, not measured."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

import slimkit
from slimkit import ArtifactError
from slimkit.cli._main import main
from slimkit.export import _artifact
from slimkit.quantize import Int8WeightOnlyConfig, quantize
from slimkit.runtime import profile_deployed
from slimkit.testing import random_splits, seeded_model


def _quantized(seed: int) -> object:
    return quantize(seeded_model("seed-cnn-slim", seed=seed), Int8WeightOnlyConfig())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_artifact_records_the_hash_of_the_graph_saved_with_it(tmp_path: Path) -> None:
    artifact = slimkit.save(_quantized(0), tmp_path / "q.safetensors")
    graph = tmp_path / "q.onnx"
    assert slimkit.read_spec(artifact)["onnx_sha256"] == _sha256(graph)
    measured = profile_deployed(
        slimkit.load(artifact), random_splits(), artifact=artifact, accuracy=False
    )
    assert measured.backend == "onnxruntime" and measured.bytes == graph.stat().st_size


def test_killed_between_the_graph_and_the_artifact_the_stale_pair_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `quantize` wrote q.safetensors, then q.onnx: killed in between, profile measured the old
    # graph beside the new artifact without a word
    artifact = slimkit.save(_quantized(0), tmp_path / "q.safetensors")
    old_artifact, old_graph = artifact.read_bytes(), (tmp_path / "q.onnx").read_bytes()

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(_artifact, "save_file", killed)
        with pytest.raises(KeyboardInterrupt):
            slimkit.save(_quantized(1), artifact)
    # The graph is written first, whole; the artifact is the old one, whole.
    assert artifact.read_bytes() == old_artifact
    assert (tmp_path / "q.onnx").read_bytes() != old_graph
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx", "q.safetensors"]

    with pytest.raises(ArtifactError, match=r"q\.onnx is stale: it is not the graph .*re-run"):
        profile_deployed(slimkit.load(artifact), random_splits(), artifact=artifact)
    argv = ["profile", artifact, "--backend", "onnxruntime", "--no-accuracy", "--device", "cpu"]
    code = main([str(a) for a in [*argv, "--limit-train", 100, "--limit-eval", 50]])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert f"{tmp_path / 'q.onnx'} is stale" in lines[0] and "re-run quantize" in lines[0]


def test_a_graph_hash_that_is_not_a_sha256_is_a_corrupted_spec(tmp_path: Path) -> None:
    path = slimkit.save(seeded_model("seed-cnn-slim"), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    spec = {**slimkit.read_spec(path), "onnx_sha256": 5}
    save_file(tensors, str(path), metadata={"slimkit": json.dumps(spec)})
    with pytest.raises(ArtifactError, match="'onnx_sha256' is 5, not a SHA-256 in hex"):
        slimkit.read_spec(path)
