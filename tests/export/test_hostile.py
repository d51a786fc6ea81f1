"""Crafted and edited artifacts: one ArtifactError line naming the file, in bounded memory.

Every hostile file here is small; what it declares is not.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from slimkit import (
    ArtifactError,
    Global,
    ModelError,
    SlimkitError,
    StructuredConfig,
    UnstructuredConfig,
    load,
    load_weights,
    prune,
    read_spec,
    save,
)
from slimkit.testing import seeded_model

MiB = 1 << 20


def _parts(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    return tensors, read_spec(path)


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: str) -> Path:
    save_file(tensors, str(path), metadata={"slimkit": metadata})
    return path


def _crc(tensor: torch.Tensor) -> int:
    return zlib.crc32(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def _zlib_bomb(byte: bytes, size: int) -> bytes:
    """``size`` bytes of ``byte``, zlib-coded a MiB at a time: the test itself stays small."""
    coder = zlib.compressobj(9)
    chunk = byte * MiB
    return b"".join(coder.compress(chunk) for _ in range(size // MiB)) + coder.flush()


def _one_line_error(call: Callable[[], object], path: Path, message: str) -> None:
    with pytest.raises(ArtifactError) as info:
        call()
    text = str(info.value)
    assert message in text
    assert str(path) in text and "\n" not in text


@pytest.fixture(scope="module")
def sparse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seed-cnn at 99% sparsity (format version 1): fc1.weight has no non-zero left and is
    stored gaps-zlib, conv2.weight bitmask-zlib."""
    model = prune(
        seeded_model("seed-cnn"), UnstructuredConfig(sparsity=0.99, scope=Global()), progress=False
    )
    path = save(model, tmp_path_factory.mktemp("hostile") / "sparse.safetensors")
    encodings = {name: entry["encoding"] for name, entry in read_spec(path)["tensors"].items()}
    assert (encodings["fc1.weight"], encodings["conv2.weight"]) == ("gaps-zlib", "bitmask-zlib")
    return path


@pytest.fixture(scope="module")
def packed_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Channel-pruned, then sparse seed-cnn: packed (format version 4), with a structure."""
    model = prune(seeded_model("seed-cnn"), StructuredConfig(ratio=0.5), progress=False)
    model = prune(model, UnstructuredConfig(sparsity=0.9, scope=Global()), progress=False)
    path = save(model, tmp_path_factory.mktemp("hostile") / "packed.safetensors")
    spec = read_spec(path)
    assert spec["format_version"] == 4 and "packed" in spec and "structure" in spec
    return path


def _spec_bomb(tmp_path: Path, base: Path) -> Path:
    """A zlib-coded spec of 128 MiB in a file of less than 1 MiB."""
    tensors, _ = _parts(base)
    coded = base64.b64encode(_zlib_bomb(b" ", 128 * MiB)).decode("ascii")
    envelope = {"format": "slimkit-artifact", "format_version": 4, "spec_zlib": coded}
    path = _write(tmp_path / "spec-bomb.safetensors", tensors, json.dumps(envelope))
    assert path.stat().st_size < MiB
    return path


def _shape_bomb(tmp_path: Path, base: Path) -> Path:
    """fc1.weight declared 500000 x 1000 (2 GB as float32) in a file of some KB."""
    tensors, spec = _parts(base)
    spec["tensors"]["fc1.weight"]["shape"] = [500_000, 1000]
    return _write(tmp_path / "shape-bomb.safetensors", tensors, json.dumps(spec))


def _pattern_bomb(tmp_path: Path, base: Path) -> Path:
    """conv2.weight's 576-byte bitmask replaced by zlib data inflating to 64 MiB."""
    tensors, spec = _parts(base)
    pattern = torch.frombuffer(bytearray(_zlib_bomb(b"\xff", 64 * MiB)), dtype=torch.uint8)
    tensors["conv2.weight::pattern"] = pattern
    spec["checksums"]["conv2.weight::pattern"] = _crc(pattern)
    return _write(tmp_path / "pattern-bomb.safetensors", tensors, json.dumps(spec))


@pytest.fixture
def traced() -> Iterator[Callable[[], int]]:
    """The peak of Python-level allocations (zlib output, JSON objects) since the fixture."""
    tracemalloc.start()
    yield lambda: tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()


def test_a_spec_that_inflates_without_bound_is_refused(
    tmp_path: Path, sparse_path: Path, traced: Callable[[], int]
) -> None:
    # issue 19: a 1.4 MB artifact whose spec inflated without a limit loaded at 2.7 GB
    path = _spec_bomb(tmp_path, sparse_path)
    _one_line_error(lambda: load(path), path, "corrupted slimkit spec (zlib data inflates beyond")
    assert traced() < 32 * MiB  # the spec's bound, not its 128 MiB


def test_a_pattern_that_inflates_beyond_its_tensor_is_refused(
    tmp_path: Path, sparse_path: Path, traced: Callable[[], int]
) -> None:
    path = _pattern_bomb(tmp_path, sparse_path)
    message = "tensor 'conv2.weight' cannot be decoded (zlib data inflates beyond the 576 bytes"
    _one_line_error(lambda: load(path), path, message)
    assert traced() < 16 * MiB  # 4608 elements need a 576-byte bitmask, not 64 MiB


def test_a_sparse_shape_is_checked_against_the_model_before_allocating(
    tmp_path: Path, sparse_path: Path
) -> None:
    # issue 19: a 99 KB artifact reached 2.56 GB: the tensor was allocated, then checked
    path = _shape_bomb(tmp_path, sparse_path)
    message = (
        "tensor 'fc1.weight' is declared with shape [500000, 1000] but the model's is [128, 1568]"
    )
    _one_line_error(lambda: load(path), path, message)


def test_load_weights_checks_declared_shapes_against_its_model(
    tmp_path: Path, sparse_path: Path
) -> None:
    path = _shape_bomb(tmp_path, sparse_path)
    with pytest.raises(ModelError, match=r"'fc1.weight' is declared with shape \[500000, 1000\]"):
        load_weights(seeded_model("seed-cnn"), path)
    # a damaged spec is the artifact's error, not a plain safetensors file's
    path = _spec_bomb(tmp_path, sparse_path)
    _one_line_error(lambda: load_weights(seeded_model("seed-cnn"), path), path, "inflates beyond")


def test_hostile_artifacts_load_in_bounded_resident_memory(
    tmp_path: Path, sparse_path: Path, packed_path: Path
) -> None:
    # Resident memory of a fresh process (torch's allocations are invisible to tracemalloc):
    # its peak after loading a valid artifact, then after each hostile one.
    tensors, spec = _parts(packed_path)
    spec["structure"]["tensors"]["fc1.weight"] = [64, 10**12]
    structure = _write(tmp_path / "structure-bomb.safetensors", tensors, json.dumps(spec))
    bombs = [
        _spec_bomb(tmp_path, sparse_path),
        _shape_bomb(tmp_path, sparse_path),
        _pattern_bomb(tmp_path, sparse_path),
        structure,
    ]
    script = """
import resource, sys
import slimkit
slimkit.load(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[2:]:
    try:
        slimkit.load(path)
    except slimkit.ArtifactError:
        pass
    else:
        raise SystemExit(f"{path} loaded")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    argv = [sys.executable, "-c", script, str(packed_path), *map(str, bombs)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 100, "MiB of resident memory beyond a valid load"


def _edit(spec: dict[str, Any], keys: tuple[Any, ...], value: Any) -> None:
    node = spec
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


@pytest.mark.parametrize(
    ("keys", "value", "message"),
    [
        (("format_version",), "1", "format_version is '1', not an integer >= 1"),
        (("format_version",), True, "format_version is True, not an integer >= 1"),
        (("format",), "other", "has format 'other', not 'slimkit-artifact'"),
        (("tensors",), [], "'tensors' is not a mapping"),
        (("tensors", "fc1.bias"), "dense", "tensor 'fc1.bias' has no encoding"),
        (("arch", "kwargs"), [1, 2], "the architecture kwargs [1, 2] are not a mapping"),
        (("arch", "name"), 7, "the architecture name 7 is not a string"),
        (("arch", "kwargs", "num_classes"), -3, "its architecture 'seed-cnn' with"),
        (("arch", "kwargs", "model_args"), [4], "model_args is a mapping of argument names"),
        (("arch", "kwargs", "model_args"), {"w": {"x": 1}}, "model_args 'w' is a dict"),
        (("checksums",), "none", "'checksums' is missing or is not"),
        (("checksums", "fc1.bias"), "0", "'checksums' is missing or is not"),
        (("tensors", "fc1.weight", "shape"), [-128, 1568], "shape [-128, 1568], not a list"),
        (("tensors", "fc1.weight", "shape"), [10**12], "declared with shape [1000000000000]"),
        (("tensors", "fc1.weight", "shape"), 128, "shape 128, not a list of sizes"),
    ],
)
def test_edited_spec_fields_are_one_line_artifact_errors(
    tmp_path: Path, sparse_path: Path, keys: tuple[str, ...], value: Any, message: str
) -> None:
    tensors, spec = _parts(sparse_path)
    _edit(spec, keys, value)
    path = _write(tmp_path / "edited.safetensors", tensors, json.dumps(spec))
    _one_line_error(lambda: load(path), path, message)


@pytest.mark.parametrize("key", ["arch", "checksums", "tensors", "format_version"])
def test_missing_spec_fields_are_one_line_artifact_errors(
    tmp_path: Path, sparse_path: Path, key: str
) -> None:
    tensors, spec = _parts(sparse_path)
    del spec[key]
    path = _write(tmp_path / "edited.safetensors", tensors, json.dumps(spec))
    _one_line_error(lambda: load(path), path, "has a corrupted slimkit spec")


@pytest.mark.parametrize(
    ("keys", "value", "message"),
    [
        (("packed", 0, 2), [-8], "packed tensor 'conv1.bias' has shape [-8]"),
        (("packed", 0, 2), [10**12], "truncated or corrupted (packed tensors end early)"),
        (("packed", 0), ["conv1.bias", "float32"], "is not [name, dtype, shape]"),
        (("packed",), {"conv1.bias": 1}, "the packed index is not a list"),
        (("structure", "tensors", "conv1.weight"), [10**12, 1, 3, 3], "pruning only shrinks"),
        (("structure", "tensors", "conv1.weight"), [-8, 1, 3, 3], "has shape [-8, 1, 3, 3]"),
        (("structure", "tensors", "conv9.weight"), [8], "resizes 'conv9.weight', which is no"),
        (("structure", "attrs"), [], "the structure's 'attrs' is not a mapping"),
        (("structure", "attrs", "conv9"), {"out_channels": 8}, "section does not fit the model"),
        (("checksums", 0), 1.5, "'checksums' is missing or is not"),
    ],
)
def test_edited_packed_and_structure_fields_are_one_line_artifact_errors(
    tmp_path: Path, packed_path: Path, keys: tuple[Any, ...], value: Any, message: str
) -> None:
    tensors, spec = _parts(packed_path)
    _edit(spec, keys, value)
    path = _write(tmp_path / "edited.safetensors", tensors, json.dumps(spec))
    _one_line_error(lambda: load(path), path, message)


@pytest.mark.parametrize(("depth", "message"), [(150, "deeper than 100"), (100_000, "too deeply")])
def test_deeply_nested_json_is_a_one_line_artifact_error(
    tmp_path: Path, sparse_path: Path, depth: int, message: str
) -> None:
    tensors, spec = _parts(sparse_path)
    nested = "[" * depth + "]" * depth  # json.dumps itself would recurse too deep
    text = json.dumps(spec)[:-1] + f', "provenance": {nested}}}'
    path = _write(tmp_path / "nested.safetensors", tensors, text)
    _one_line_error(lambda: read_spec(path), path, message)
    _one_line_error(lambda: load(path), path, message)


_HOSTILE = (None, -1, "x", [10**12], {"a": [-1]}, [[[[]]]])
_DELETE = object()


def _leaves(node: Any, keys: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of ``node`` (containers and leaves), free-form provenance aside."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in items:
        if keys == () and key in ("provenance", "metrics", "slimkit_version"):
            continue
        yield (*keys, key)
        if isinstance(child, dict | list):
            yield from _leaves(child, (*keys, key))


@pytest.mark.parametrize("kind", ["sparse", "packed"])
def test_every_spec_field_replaced_gives_a_clean_error_or_loads(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    tensors, spec = _parts(request.getfixturevalue(f"{kind}_path"))
    path = tmp_path / "fuzzed.safetensors"
    tried = 0
    for keys in _leaves(spec):
        for value in (*_HOSTILE, _DELETE):
            edited = copy.deepcopy(spec)
            if value is _DELETE:
                parent = edited
                for key in keys[:-1]:
                    parent = parent[key]
                del parent[keys[-1]]
            else:
                _edit(edited, keys, value)
            _write(path, tensors, json.dumps(edited))
            try:
                load(path)
            except SlimkitError as err:  # anything else fails the test with its traceback
                assert "\n" not in str(err), (keys, value)
            tried += 1
    assert tried > 300


def test_the_cli_prints_one_line_and_exits_1(
    tmp_path: Path, sparse_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slimkit.cli._main import main

    tensors, spec = _parts(sparse_path)
    spec["arch"]["kwargs"] = ["num_classes", 10]
    edited = _write(tmp_path / "kwargs.safetensors", tensors, json.dumps(spec))
    for path in (edited, _shape_bomb(tmp_path, sparse_path), _spec_bomb(tmp_path, sparse_path)):
        assert main(["graph", str(path)]) == 1
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"slimkit: error: {path}"), lines


def _artifact_kinds(folder: Path) -> dict[str, Path]:
    """One artifact of every kind: dense, sparse, structured, packed, int8 (ONNX Runtime)."""
    from slimkit.quantize import Int8StaticConfig, quantize
    from slimkit.testing import random_splits

    slim = seeded_model("seed-cnn-slim")
    models = {
        "dense": slim,
        "sparse": prune(slim, UnstructuredConfig(sparsity=0.9, scope=Global()), progress=False),
        "structured": prune(slim, StructuredConfig(ratio=0.5), progress=False),
        "int8": quantize(
            slim, Int8StaticConfig(calib_batches=1), calib_data=random_splits(), progress=False
        ),
    }
    models["packed"] = prune(
        models["structured"], UnstructuredConfig(sparsity=0.9, scope=Global()), progress=False
    )
    return {kind: save(model, folder / f"{kind}.safetensors") for kind, model in models.items()}


def test_random_bytes_of_every_artifact_kind_give_clean_errors(tmp_path: Path) -> None:
    # Seeded byte mutations anywhere in the file (header length, JSON spec, tensor data) of
    # every kind of artifact: each load either succeeds or raises one SlimkitError line.
    import random

    rng = random.Random(0)
    kinds = _artifact_kinds(tmp_path)
    outcomes = {"loaded": 0, "refused": 0}
    for kind, source in kinds.items():
        data = source.read_bytes()
        header = 8 + int.from_bytes(data[:8], "little")
        for trial in range(40):
            mutated = bytearray(data)
            # Half the mutations hit the header (where the spec lives), half anywhere.
            limit = header if trial % 2 else len(data)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(limit)] = rng.randrange(256)
            path = tmp_path / f"fuzzed-{kind}.safetensors"
            path.write_bytes(bytes(mutated))
            if kind == "int8":  # its ONNX twin is checked against the artifact's hash
                path.with_suffix(".onnx").write_bytes(source.with_suffix(".onnx").read_bytes())
            try:
                load(path)
            except SlimkitError as err:  # anything else fails the test with its traceback
                assert "\n" not in str(err), (kind, trial)
                outcomes["refused"] += 1
            else:
                outcomes["loaded"] += 1
    assert outcomes["refused"] > 100, outcomes  # CRCs and spec checks catch most mutations
