"""Checks of an artifact's spec before anything it declares is built or allocated.

An artifact may come from anyone: every field loading reads is checked for its kind here, so
an edited or crafted spec gives one :class:`~slimkit.errors.ArtifactError` line naming the
file, never a traceback; and every shape is checked against the file and the model before a
tensor of that shape exists, so a crafted spec cannot make loading allocate more than the
model itself needs.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..errors import ArtifactError

#: A spec's JSON nests a few levels (provenance → budget search → trials → one trial); a
#: deeper one is crafted, and walking it would exhaust the interpreter's stack later.
MAX_DEPTH = 100
#: What a zlib-coded spec may inflate to: a base for provenance and metrics, plus what the
#: file's tensors could need (about 100 bytes of spec per stored tensor, far less than its
#: bytes). zlib inflates up to ~1000x, so without a bound 1 MB of file became 2.7 GB.
SPEC_BASE_BYTES = 4 << 20
_REPR = reprlib.Repr()
_REPR.maxlist = _REPR.maxdict = 8
_REPR.maxstring = 60
show = _REPR.repr  # a spec's value in a message: a crafted one may be megabytes long
#: The spec field holding the SHA-256 of the ``.onnx`` graph saved with a quantized artifact.
ONNX_HASH_KEY = "onnx_sha256"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def spec_limit(file_size: int) -> int:
    """The most bytes a legitimate zlib-coded spec of a ``file_size``-byte artifact holds."""
    return SPEC_BASE_BYTES + file_size // 2


def _corrupted(path: Path, problem: str) -> ArtifactError:
    return ArtifactError(
        f"{path} has a corrupted slimkit spec: {problem}; re-create the artifact with slimkit.save"
    )


def check_depth(path: Path, value: Any) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _corrupted(path, f"it nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def is_shape(value: Any) -> bool:
    """A list of non-negative integers (bools are not integers here)."""
    return isinstance(value, list) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    )


def _check_shape(path: Path, what: str, value: Any) -> None:
    if not is_shape(value):
        raise _corrupted(path, f"{what} has shape {show(value)}, not a list of sizes >= 0")


def check_version(path: Path, spec: Any, *, newest: int, fmt: str) -> None:
    """The format name and an integer version this slimkit reads."""
    if not isinstance(spec, dict):
        raise _corrupted(path, "it is not a JSON object")
    if spec.get("format") != fmt:
        raise ArtifactError(
            f"{path} has format {show(spec.get('format'))}, not {fmt!r}: it was not written by "
            "slimkit; re-create it with slimkit.save"
        )
    version = spec.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _corrupted(path, f"format_version is {show(version)}, not an integer >= 1")
    if version > newest:
        raise ArtifactError(
            f"{path} has format {fmt!r} version {version}; this slimkit reads up to version "
            f"{newest}: upgrade slimkit"
        )


def check_spec(path: Path, spec: dict[str, Any]) -> None:
    """Every field that loading reads has its kind; shapes are lists of sizes >= 0."""
    _check_arch(path, spec.get("arch"))
    tensors = spec.get("tensors")
    if not isinstance(tensors, dict):
        raise _corrupted(path, "'tensors' is not a mapping of tensor names to entries")
    for name, entry in tensors.items():
        _check_entry(path, name, entry)
    _check_checksums(path, spec.get("checksums"))
    if "packed" in spec:
        _check_packed(path, spec["packed"])
    if "structure" in spec:
        check_structure(path, spec["structure"])
    if "quantization" in spec:
        _check_quantization(path, spec["quantization"])
    digest = spec.get(ONNX_HASH_KEY)
    if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        raise _corrupted(path, f"{ONNX_HASH_KEY!r} is {show(digest)}, not a SHA-256 in hex")


def _check_quantization(path: Path, section: Any) -> None:
    if not isinstance(section, dict):
        raise _corrupted(path, "'quantization' is not a mapping")
    if section.get("input_shape") is not None:
        _check_shape(path, "the quantization's example input", section["input_shape"])
    if not isinstance(section.get("config"), dict):
        raise _corrupted(path, "the quantization has no 'config' mapping (its scheme's settings)")
    for key in ("scheme", "backend", "engine"):
        if key in section and not isinstance(section[key], str):
            raise _corrupted(path, f"the quantization's {key} {show(section[key])} is not a string")
    _check_mapping(path, section, "ranges", _is_range, "[low, high] numbers")
    _check_mapping(path, section, "activations", _is_activation, "{scale, zero_point} numbers")
    weights = section.get("int8_weights", [])
    if not (isinstance(weights, list) and all(isinstance(w, str) for w in weights)):
        raise _corrupted(path, f"the quantization's int8_weights {show(weights)} are not names")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_range(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)


def _is_activation(value: Any) -> bool:
    return isinstance(value, dict) and all(
        _is_number(value.get(key)) for key in ("scale", "zero_point")
    )


def _check_mapping(path: Path, section: dict[str, Any], key: str, valid: Any, what: str) -> None:
    """``section[key]``, if there is one, maps names to entries ``valid`` accepts."""
    if key not in section:
        return
    value = section[key]
    if not isinstance(value, dict):
        raise _corrupted(path, f"the quantization's {key} {show(value)} is not a mapping")
    for name, entry in value.items():
        if not valid(entry):
            raise _corrupted(
                path, f"the quantization's {key} of {show(name)} is {show(entry)}, not {what}"
            )


def _check_arch(path: Path, arch: Any) -> None:
    if not isinstance(arch, dict):
        raise _corrupted(path, "'arch' (the architecture to rebuild) is missing or not a mapping")
    if arch.get("name") is not None and not isinstance(arch["name"], str):
        raise _corrupted(path, f"the architecture name {show(arch['name'])} is not a string")
    kwargs = arch.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise _corrupted(path, f"the architecture kwargs {show(kwargs)} are not a mapping")


def _check_entry(path: Path, name: str, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("encoding"), str):
        raise _corrupted(path, f"tensor {show(name)} has no encoding")
    if entry["encoding"] != "dense" or "shape" in entry:
        _check_shape(path, f"tensor {show(name)}", entry.get("shape"))
    if "dtype" in entry and not isinstance(entry["dtype"], str):
        raise _corrupted(path, f"tensor {show(name)} has dtype {show(entry['dtype'])}")


def _check_checksums(path: Path, checksums: Any) -> None:
    values = checksums.values() if isinstance(checksums, dict) else checksums
    if not isinstance(checksums, dict | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise _corrupted(path, "'checksums' is missing or is not a list or mapping of CRC32s")


def _check_packed(path: Path, index: Any) -> None:
    if not isinstance(index, list):
        raise _corrupted(path, "the packed index is not a list")
    names: set[str] = set()
    for item in index:
        if not (
            isinstance(item, list) and len(item) == 3 and all(isinstance(s, str) for s in item[:2])
        ):
            raise _corrupted(path, f"packed index entry {show(item)} is not [name, dtype, shape]")
        _check_shape(path, f"packed tensor {show(item[0])}", item[2])
        if item[0] in names:
            raise _corrupted(path, f"packed tensor {show(item[0])} is listed twice")
        names.add(item[0])


def check_structure(path: Path, structure: Any) -> None:
    """The kinds of a structure section: resized tensor shapes, width attributes, removed
    blocks."""
    if not isinstance(structure, dict):
        raise _corrupted(path, "'structure' is not a mapping")
    tensors = structure.get("tensors", {})
    if not isinstance(tensors, dict):
        raise _corrupted(path, "the structure's 'tensors' is not a mapping")
    for name, shape in tensors.items():
        _check_shape(path, f"structure tensor {show(name)}", shape)
    attrs = structure.get("attrs", {})
    if not isinstance(attrs, dict) or not all(isinstance(v, dict) for v in attrs.values()):
        raise _corrupted(path, "the structure's 'attrs' is not a mapping of modules to values")
    removed = structure.get("removed", [])
    if not isinstance(removed, list) or not all(isinstance(r, str) for r in removed):
        raise _corrupted(path, "the structure's 'removed' is not a list of module paths")


def check_resized(path: Path, structure: dict[str, Any], own: Mapping[str, Any]) -> None:
    """Pruning only shrinks: every resized tensor is one of the model's, with as many dims,
    none larger. Checked before the tensors of those shapes are allocated."""
    for name, shape in structure.get("tensors", {}).items():
        tensor = own.get(name)
        if tensor is None:
            raise ArtifactError(
                f"{path}: its structure resizes {show(name)}, which is no tensor of the model; the "
                "artifact was saved for another architecture or is corrupted"
            )
        if len(shape) != tensor.dim() or any(
            new > old for new, old in zip(shape, tensor.shape, strict=True)
        ):
            raise ArtifactError(
                f"{path}: its structure resizes {name!r} to {show(shape)}, but pruning only shrinks "
                f"the model's {list(tensor.shape)}; the artifact is corrupted, re-create it"
            )


def check_declared(
    path: Path, name: str, shape: list[int], own: Mapping[str, Any], error: type[Exception]
) -> None:
    """A sparsely stored tensor's declared shape is the model's, before it is allocated."""
    if name not in own:
        raise error(
            f"{path}: tensor {show(name)} is not in the model; the artifact was saved for another "
            "architecture or is corrupted"
        )
    expected = list(own[name])
    if shape != expected:
        raise error(
            f"{path}: tensor {name!r} is declared with shape {show(shape)} but the model's is "
            f"{expected}; it was saved for another architecture or is corrupted"
        )


def check_graph(artifact: Path, spec: dict[str, Any], graph: Path) -> None:
    """Raise :class:`ArtifactError` unless ``graph`` holds the bytes ``artifact``'s spec records.

    ``slimkit.save`` writes the graph, then the artifact with the graph's hash: a process
    killed in between leaves a new graph beside the old artifact, which this refuses. Artifacts
    saved before graphs were hashed record none and pass.
    """
    expected = spec.get(ONNX_HASH_KEY)
    if expected is None:
        check_onnx(graph)
    elif sha256_file(graph) != expected:
        raise ArtifactError(
            f"{graph} is stale: it is not the graph {artifact} was saved with (its SHA-256 "
            "differs from the one the artifact records); re-run quantize to write both again"
        )


def check_onnx(graph: Path) -> None:
    """Raise :class:`ArtifactError` unless ``graph`` parses as a well-formed ONNX model.

    For graphs no hash vouches for: a truncated file fails to parse, or (cut at a field
    boundary) loses nodes or initializers the checker then finds missing. Without the
    ``onnx`` package nothing is checked; the runtime reports the damage instead.
    """
    try:
        import onnx
    except ImportError:
        return
    try:
        onnx.checker.check_model(onnx.load(str(graph)))
    except Exception as err:  # protobuf's DecodeError, onnx's ValidationError, OSError
        problem = " ".join(str(err).split())[:200] or type(err).__name__
        raise ArtifactError(
            f"{graph} is truncated or corrupted ({problem}); re-run quantize to write it again"
        ) from None
