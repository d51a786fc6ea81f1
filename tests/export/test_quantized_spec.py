"""Edited quantization sections and damaged ``.onnx`` twins: one ArtifactError line naming the
file, exit 1 from the CLI, never a traceback (#19 items 5 and 9)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from slimkit import ArtifactError, SlimkitError, load, read_spec, save
from slimkit.cli._main import main
from slimkit.export import check_graph
from slimkit.quantize import Int8StaticConfig, quantize
from slimkit.testing import random_splits, seeded_model

LIMITS = ["--limit-train", "64", "--limit-eval", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def int8_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seed-cnn-slim, int8 static for ONNX Runtime, with its ``.onnx`` twin."""
    model = quantize(seeded_model("seed-cnn-slim"), Int8StaticConfig(calib_batches=1),
                     calib_data=random_splits(), progress=False)  # fmt: skip
    return save(model, tmp_path_factory.mktemp("int8") / "q.safetensors")


def _parts(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    return tensors, read_spec(path)


def _edited(path: Path, source: Path, edit: Any) -> Path:
    tensors, spec = _parts(source)
    edit(spec["quantization"])
    save_file(tensors, str(path), metadata={"slimkit": json.dumps(spec)})
    return path


def _set(key: str, value: Any) -> Any:
    return lambda section: section.__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("config", [1]), "the quantization has no 'config' mapping"),
        (lambda s: s.pop("config"), "the quantization has no 'config' mapping"),
        (_set("ranges", [1]), "the quantization's ranges [1] is not a mapping"),
        (lambda s: s["ranges"].__setitem__("conv2d", "x"),
         "the quantization's ranges of 'conv2d' is 'x', not [low, high] numbers"),
        (lambda s: s["ranges"].__setitem__("conv2d", [0.0, float("nan")]), "not [low, high]"),
        (_set("int8_weights", 5), "the quantization's int8_weights 5 are not names"),
        (_set("backend", 3), "the quantization's backend 3 is not a string"),
        (_set("activations", {"x": {"scale": "1"}}), "activations of 'x' is {'scale': '1'}"),
        (_set("engine", "other"), "was written by an older slimkit"),
        (lambda s: s["config"].__setitem__("observer", 7), "Int8StaticConfig.observer must be"),
    ],
)  # fmt: skip
def test_an_edited_quantization_section_is_a_one_line_error_naming_the_file(
    tmp_path: Path, int8_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, message: str
) -> None:
    # a corrupt quantization section exited 2 (the bad-argument code), or with a traceback,
    # and the message did not name the file
    path = _edited(tmp_path / "edited.safetensors", int8_path, edit)
    with pytest.raises(ArtifactError) as info:
        load(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert main(["graph", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"slimkit: error: {path}"), lines


def test_a_missing_activation_range_is_named_not_blamed_on_the_data(
    tmp_path: Path, int8_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A range deleted from the section: the graph is rebuilt on first use, and that must say
    # the artifact is damaged (it said the model does not fit the data).
    def drop_one(section: dict[str, Any]) -> None:
        section["ranges"].pop(sorted(section["ranges"])[1])

    path = _edited(tmp_path / "edited.safetensors", int8_path, drop_one)
    model = load(path)
    with pytest.raises(ArtifactError, match="no range for 1 activation"):
        model(torch.zeros(1, 1, 28, 28))
    assert main(["profile", str(path), "--no-accuracy", *LIMITS]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"slimkit: error: {path}: "), lines
    assert "no range for 1 activation" in lines[0] and "does not" not in lines[0]


_HOSTILE = (None, -1, "x", [10**12], {"a": [-1]}, [[[[]]]])
_DELETE = object()


def _paths(node: Any, keys: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    found = []
    for key, child in items:
        found.append((*keys, key))
        if isinstance(child, dict | list) and key != "report":  # the report is informative
            found += _paths(child, (*keys, key))
    return found


def test_every_quantization_field_replaced_gives_a_clean_error_or_loads(
    tmp_path: Path, int8_path: Path
) -> None:
    tensors, spec = _parts(int8_path)
    path = tmp_path / "fuzzed.safetensors"
    tried = 0
    for keys in _paths(spec["quantization"]):
        for value in (*_HOSTILE, _DELETE):
            edited = copy.deepcopy(spec)
            parent = edited["quantization"]
            for key in keys[:-1]:
                parent = parent[key]
            if value is _DELETE:
                del parent[keys[-1]]
            else:
                parent[keys[-1]] = value
            save_file(tensors, str(path), metadata={"slimkit": json.dumps(edited)})
            try:
                load(path)
            except SlimkitError as err:  # anything else fails the test with its traceback
                assert "\n" not in str(err) and str(path) in str(err), (keys, value, err)
            tried += 1
    assert tried > 100


def _without_graph_hash(tmp_path: Path, int8_path: Path) -> Path:
    """An int8 artifact as slimkit wrote them before graphs were hashed."""
    tensors, spec = _parts(int8_path)
    del spec["onnx_sha256"]
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={"slimkit": json.dumps(spec)})
    return path


def test_a_truncated_onnx_twin_is_refused_naming_it(
    tmp_path: Path, int8_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = _without_graph_hash(tmp_path, int8_path)
    graph = artifact.with_suffix(".onnx")
    whole = int8_path.with_suffix(".onnx").read_bytes()
    graph.write_bytes(whole)
    check_graph(artifact, read_spec(artifact), graph)  # whole: fine
    for cut in (len(whole) // 3, len(whole) - 1, 10):
        graph.write_bytes(whole[:cut])
        with pytest.raises(ArtifactError, match=f"^{graph} is truncated or corrupted"):
            check_graph(artifact, read_spec(artifact), graph)
    argv = ["profile", str(artifact), "--backend", "onnxruntime", "--no-accuracy", *LIMITS]
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"slimkit: error: {graph} is truncated or corrupted (")
    assert lines[0].endswith("; re-run quantize to write it again")
    # With the hash an artifact records, the same damage is a stale graph.
    twin = int8_path.with_suffix(".onnx")
    saved = twin.read_bytes()
    try:
        twin.write_bytes(saved[:1000])
        with pytest.raises(ArtifactError, match=f"^{twin} is stale"):
            check_graph(int8_path, read_spec(int8_path), twin)
    finally:
        twin.write_bytes(saved)
