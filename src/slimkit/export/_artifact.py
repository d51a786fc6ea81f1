"""Artifacts: one ``.safetensors`` file whose metadata holds a JSON spec of the model.

The spec records the architecture (how to rebuild the module), how each tensor is encoded, a
CRC32 per stored tensor, and free-form provenance and metrics. Loading parses JSON and raw
tensors only: nothing is unpickled and no code from the file runs.

Quantized models (format version 2) add a ``quantization`` section: the scheme, its config and
the quantization report. Their integer weights are ordinary int8/uint8 tensors beside float32
scales; loading rebuilds the quantized module structure from the section, then fills it.

Artifacts with sparsely encoded tensors (format version 4) are packed: every stored tensor
is concatenated into one uint8 tensor, ``slimkit::packed``, listed (name, dtype, shape) in the
spec, and the spec is zlib-coded. On resnet56 at 88% sparsity + int8 the per-tensor safetensors
header and the plain JSON spec were 37 KB of a 238 KB file; reading a sparse tensor needs
slimkit anyway.

Structurally pruned models (format version 2) add a ``structure`` section: the shapes of the
tensors that pruning resized and the width attributes it changed (``out_channels``,
``num_heads``, ``hidden_dim``, ...). Loading builds the registered architecture, resizes those
tensors, sets those attributes, then fills the weights: pruning is not re-run.
"""

from __future__ import annotations

import base64
import json
import math
import os
import zlib
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .._attrs import ARCH_ATTR, SPEC_ATTR, STRUCTURE_ATTR
from .._io import atomic_path, sha256_file
from .._version import __version__
from ..errors import ArtifactError, ModelError
from ..models import create_model
from ..models._registry import arch_record
from ..models._sources import check_trusted
from ._sections import SECTIONS, carried
from ._sparse import decode_sparse, encode_sparse, inflate
from ._spec import (
    ONNX_HASH_KEY,
    check_declared,
    check_depth,
    check_resized,
    check_spec,
    check_version,
    show,
    spec_limit,
)

FORMAT = "slimkit-artifact"
FORMAT_VERSION = 4
FLOAT_FORMAT_VERSION = 1  # float models keep version 1, so older slimkit versions still read them
# From version 3 the spec lists only tensors stored in a non-dense encoding: a dense tensor's
# shape and dtype are in the safetensors header already, and on small int8 models the
# repeated entries were several percent of the file.
COMPACT_FROM_VERSION = 3
PACKED_VERSION = 4
PACKED_TENSOR = "slimkit::packed"
#: The outer spec of a packed artifact holds the real one zlib-coded, in base64, under this key.
ZLIB_SPEC_KEY = "spec_zlib"
METADATA_KEY = "slimkit"


def _crc(tensor: torch.Tensor) -> int:
    return (
        zlib.crc32(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        if tensor.numel()
        else 0
    )


def _checksums(stored: dict[str, torch.Tensor], *, compact: bool) -> Any:
    """CRC32 of every stored tensor: by name, or (compact) a list in sorted-name order."""
    if compact:
        return [_crc(stored[name]) for name in sorted(stored)]
    return {name: _crc(tensor) for name, tensor in stored.items()}


def _encode_state(
    state: dict[str, torch.Tensor], sparse: bool
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    stored: dict[str, torch.Tensor] = {}
    layout: dict[str, Any] = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        entry: dict[str, Any] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype)[6:]}
        encoded = encode_sparse(tensor) if sparse and tensor.numel() > 1 else None
        if encoded is None:
            entry["encoding"] = "dense"
            stored[name] = tensor.clone()
        else:
            entry.update(encoding=encoded.encoding, nnz=encoded.nnz)
            stored[f"{name}::pattern"] = encoded.pattern
            stored[f"{name}::values"] = encoded.values
        layout[name] = entry
    return stored, layout


def save(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    sparse: bool = True,
) -> Path:
    """Save ``model`` as a slimkit artifact, atomically.

    Tensors with enough zeros are stored sparsely, so the file shrinks with sparsity;
    :func:`load` restores them exactly. A model quantized for ONNX Runtime int8 also gets its
    deployable graph written beside the artifact (``q.safetensors`` → ``q.onnx``), first, and
    the artifact records the graph's SHA-256 so that a stale graph is refused.

    Args:
        model: a model built by :func:`slimkit.create_model` or loaded by :func:`load`.
        path: the ``.safetensors`` file to write.
        provenance: how the model was made (recipe, data, parent artifact); JSON-serialisable.
        metrics: measured numbers to keep with the model; JSON-serialisable.
        sparse: store sparse tensors compactly (default True).

    Example:
        >>> slimkit.save(model, "model.safetensors", metrics={"test_accuracy": 91.7})
    """
    stored, layout = _encode_state(model.state_dict(), sparse)
    previous = getattr(model, SPEC_ATTR, {})
    sections = carried(model)
    structure = getattr(model, STRUCTURE_ATTR, None)
    plain = not sections and not structure
    version = FLOAT_FORMAT_VERSION if plain else COMPACT_FROM_VERSION
    if version >= COMPACT_FROM_VERSION and any(e["encoding"] != "dense" for e in layout.values()):
        version = PACKED_VERSION
    if version >= COMPACT_FROM_VERSION:
        layout = {name: entry for name, entry in layout.items() if entry["encoding"] != "dense"}
    spec = {
        "format": FORMAT,
        "format_version": version,
        "slimkit_version": __version__,
        "arch": arch_record(model),
        "tensors": layout,
        "checksums": _checksums(stored, compact=version >= COMPACT_FROM_VERSION),
        "provenance": provenance if provenance is not None else previous.get("provenance", {}),
        "metrics": metrics if metrics is not None else previous.get("metrics", {}),
    }
    if structure:
        spec["structure"] = structure
    for section in sections:
        spec[section.key] = section.describe(model)
    if version == PACKED_VERSION:
        stored, spec["packed"] = _pack(stored)
    for section in sections:
        if section.deploy is None:
            continue
        # The graph first, then the artifact with the graph's hash: killed in between, the
        # old artifact's hash no longer matches and the stale pair is refused, not measured.
        graph = section.deploy(model, Path(path))
        if graph is not None:
            spec[ONNX_HASH_KEY] = sha256_file(graph)
    with atomic_path(path) as tmp:
        save_file(stored, str(tmp), metadata={METADATA_KEY: _spec_text(spec)})
    return Path(path)


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _spec_text(spec: dict[str, Any]) -> str:
    """The metadata string: the spec as JSON, zlib-coded inside a small envelope if packed."""
    if spec["format_version"] < PACKED_VERSION:
        return _compact_json(spec)
    coded = base64.b64encode(zlib.compress(_compact_json(spec).encode(), 9)).decode("ascii")
    envelope = {"format": FORMAT, "format_version": spec["format_version"], ZLIB_SPEC_KEY: coded}
    return _compact_json(envelope)


def _pack(stored: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[list[Any]]]:
    """Every stored tensor's bytes, in name order, as one uint8 tensor; and its index."""
    names = sorted(stored)
    parts = [stored[name].contiguous().reshape(-1).view(torch.uint8) for name in names]
    index = [[name, str(stored[name].dtype)[6:], list(stored[name].shape)] for name in names]
    blob = torch.cat(parts) if parts else torch.empty(0, dtype=torch.uint8)
    return {PACKED_TENSOR: blob}, index


def _unpack(path: Path, blob: torch.Tensor, index: list[list[Any]]) -> dict[str, torch.Tensor]:
    stored: dict[str, torch.Tensor] = {}
    offset = 0
    for name, dtype_name, shape in index:
        dtype = _dtype({"dtype": dtype_name})
        if dtype is None:
            raise ArtifactError(
                f"{path}: tensor {show(name)} has unknown dtype {show(dtype_name)}; the file is "
                "corrupted, re-create it"
            )
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes > blob.numel():
            raise ArtifactError(f"{path} is truncated or corrupted (packed tensors end early)")
        stored[name] = blob[offset : offset + nbytes].clone().view(dtype).reshape(shape)
        offset += nbytes
    if offset != blob.numel():
        raise ArtifactError(f"{path} is truncated or corrupted (packed tensors size mismatch)")
    return stored


def _dtype(entry: dict[str, Any]) -> torch.dtype | None:
    value = getattr(torch, str(entry.get("dtype", "")), None)
    return value if isinstance(value, torch.dtype) else None


def read_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an artifact's JSON spec without loading its tensors.

    Raises:
        ArtifactError: if the file is missing, not a safetensors file, or not a slimkit artifact.
    """
    path = Path(path)
    metadata = _metadata(path)
    if METADATA_KEY not in metadata:
        raise ArtifactError(
            f"{path} is a safetensors file without a slimkit spec; load plain weights with "
            "slimkit.load_weights(model, path) into a model built by slimkit.create_model"
        )
    spec = _parse(path, metadata[METADATA_KEY])
    if ZLIB_SPEC_KEY in spec:
        try:
            if not isinstance(spec[ZLIB_SPEC_KEY], str):
                raise ValueError(f"{ZLIB_SPEC_KEY!r} is not a string")
            raw = base64.b64decode(spec[ZLIB_SPEC_KEY], validate=True)
            text = inflate(raw, spec_limit(path.stat().st_size))
        except (zlib.error, ValueError) as err:
            raise ArtifactError(
                f"{path} has a corrupted slimkit spec ({err}); re-create the artifact"
            ) from None
        spec = _parse(path, text)
    check_spec(path, spec)
    return spec


def _metadata(path: Path) -> dict[str, str]:
    """The safetensors header's metadata (safetensors bounds the header's size)."""
    if not path.is_file():
        raise ArtifactError(f"artifact {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for damaged headers
        raise ArtifactError(
            f"{path} is not a readable safetensors file ({err}); it is truncated or corrupted, "
            "re-create it"
        ) from None


def _parse(path: Path, text: str | bytes) -> dict[str, Any]:
    """The JSON of a spec (or of its zlib envelope), of a format and version this reads."""
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested beyond the stack
        problem = "it nests too deeply" if isinstance(err, RecursionError) else str(err)
        raise ArtifactError(
            f"{path} has a corrupted slimkit spec ({problem}); re-create the artifact"
        ) from None
    check_depth(path, spec)
    check_version(path, spec, newest=FORMAT_VERSION, fmt=FORMAT)
    checked: dict[str, Any] = spec
    return checked


def _read_stored(path: Path, spec: dict[str, Any]) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            stored = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as err:
        raise ArtifactError(f"{path} is truncated or corrupted ({err}); re-create it") from None
    if "packed" in spec:
        if set(stored) != {PACKED_TENSOR}:
            raise ArtifactError(f"{path} is truncated or corrupted: no {PACKED_TENSOR!r} tensor")
        stored = _unpack(path, stored[PACKED_TENSOR], spec["packed"])
    checksums = spec["checksums"]  # read_spec checked its kind
    if isinstance(checksums, list):  # version 3: one CRC per stored tensor, in name order
        names = sorted(stored)
        if len(names) != len(checksums):
            raise ArtifactError(
                f"{path} holds {len(names)} tensors but its spec lists {len(checksums)}; the "
                "file is corrupted, re-create it"
            )
        checksums = dict(zip(names, checksums, strict=True))
    unchecked = sorted(set(stored) - set(checksums))
    if unchecked:
        raise ArtifactError(
            f"{path}: tensor {unchecked[0]!r} has no checksum in the spec; the file is corrupted, "
            "re-create it"
        )
    for name, expected in checksums.items():
        if name not in stored or _crc(stored[name]) != expected:
            raise ArtifactError(
                f"{path}: tensor {name!r} is missing or fails its checksum; the file is "
                "corrupted, re-create it"
            )
    return stored


def _decode_state(
    path: Path, spec: dict[str, Any], own: dict[str, torch.Size], error: type[Exception]
) -> dict[str, torch.Tensor]:
    """The state dict an artifact stores. A sparse tensor's declared shape must be ``own``'s
    (the model's) before it is allocated: a crafted shape raises ``error`` instead."""
    stored = _read_stored(path, spec)
    # Dense tensors without an entry (version 3) are stored under their own name.
    state: dict[str, torch.Tensor] = {
        name: tensor
        for name, tensor in stored.items()
        if "::" not in name and name not in spec["tensors"]
    }
    for name, entry in spec["tensors"].items():
        parts = [name] if entry["encoding"] == "dense" else [f"{name}::pattern", f"{name}::values"]
        if any(part not in stored for part in parts):
            raise ArtifactError(
                f"{path}: tensor {name!r} is listed in the spec but not stored; the file is "
                "corrupted, re-create it"
            )
        if entry["encoding"] == "dense":
            state[name] = stored[name]
            continue
        check_declared(path, name, entry["shape"], own, error)
        try:
            state[name] = decode_sparse(
                entry["encoding"],
                stored[parts[0]],
                stored[parts[1]],
                entry["shape"],
                _dtype(entry),
            )
        except (ValueError, zlib.error, RuntimeError) as err:
            raise ArtifactError(
                f"{path}: tensor {name!r} cannot be decoded ({err}); the file is corrupted, "
                "re-create it"
            ) from None
    return state


def _shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {name: tensor.shape for name, tensor in model.state_dict().items()}


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by name, shared ones under each of their names."""
    named: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
    named.update(model.named_buffers(remove_duplicate=False))
    return named


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``model``, naming the first mismatching tensor when they differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelError(
            f"{source} does not match this architecture: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}; it was saved for another model, pass the matching --model"
        )
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise ModelError(
                f"{source}: tensor {name!r} has shape {list(tensor.shape)} but the model expects "
                f"{list(own[name].shape)}; it was saved for another architecture or width"
            )
    model.load_state_dict(state)


def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
    trust_code: bool = False,
) -> nn.Module:
    """Rebuild a model from an artifact written by :func:`save`, in eval mode.

    The artifact's pruned widths, removed blocks and quantization are replayed onto a fresh
    model, then its tensors loaded. The spec is available afterwards as ``model.slimkit_spec``.

    Args:
        path: the ``.safetensors`` artifact.
        device: where the loaded model lives.
        model: a fresh instance of the saved model's class (as the user built it before
            compressing); it is reshaped in place. Needed for models built outside slimkit.
        trust_code: allow importing the user module an artifact's ``module:function`` model
            names (its code runs); not needed when ``model`` is given or this process built
            a model from that factory already.

    Example:
        >>> model = slimkit.load("model.safetensors")
        >>> mine = slimkit.load("mynet-int8.safetensors", model=MyNet())

    Raises:
        ArtifactError: if the file is missing, truncated or corrupted.
        ModelError: if its architecture is unknown to this slimkit, its model needs ``model=``
            or its user module needs ``trust_code=True``.
    """
    path = Path(path)
    spec = read_spec(path)
    arch = spec["arch"]
    if model is None:
        model = _fresh_model(path, arch, trust_code)
    else:
        setattr(model, ARCH_ATTR, dict(arch))
    model = _restore(path, model, spec)
    # The structure is the model's now: every stored shape is checked against it, not
    # against what the spec claims, before a tensor of that shape is allocated.
    state = _decode_state(path, spec, _shapes(model), ArtifactError)
    load_state(model, state, str(path))
    setattr(model, SPEC_ATTR, spec)
    return model.to(device).eval()


def _restore(path: Path, model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Replay the pruned structure and the quantization the spec records onto ``model``."""
    try:
        if "structure" in spec:
            from ..graph import restore_structure as resize_pruned

            check_resized(path, spec["structure"], _tensors(model))
            model = resize_pruned(model, spec["structure"])
            setattr(model, STRUCTURE_ATTR, spec["structure"])
        for key in SECTIONS.names():
            if key in spec:
                model = SECTIONS.get(key).restore(model, spec[key])
    except ArtifactError as err:  # raised by a section's owner, which does not know the file
        if str(path) in str(err):
            raise
        raise ArtifactError(f"{path}: {err}") from None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise ArtifactError(
            f"{path}: its spec's structure or quantization section does not fit the model "
            f"({type(err).__name__}: {err}); the file is corrupted, re-create it"
        ) from None
    return model


def _fresh_model(path: Path, arch: dict[str, Any], trust_code: bool) -> nn.Module:
    name = arch.get("name")
    if name is None:
        raise ModelError(
            f"{path} holds a {arch.get('class', 'model')} built outside slimkit; load it onto "
            "a fresh instance: slimkit.load(path, model=YourModel(...))"
        )
    check_trusted(name, trust_code)
    kwargs = arch.get("kwargs", {})
    try:
        return create_model(name, **kwargs)
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as err:
        raise ArtifactError(
            f"{path}: its architecture {show(name)} with {show(kwargs)} cannot be built ({err}); the "
            "spec is corrupted, re-create the artifact"
        ) from None


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load tensors from a slimkit artifact or a plain safetensors state dict into ``model``.

    Raises:
        ArtifactError: if the file is missing, truncated or corrupted.
        ModelError: if the tensors do not match the model's architecture.
    """
    path = Path(path)
    if METADATA_KEY in _metadata(path):  # a slimkit artifact, however damaged its spec
        state = _decode_state(path, read_spec(path), _shapes(model), ModelError)
    else:
        try:
            with safe_open(str(path), framework="pt") as handle:
                state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except Exception as err:
            raise ArtifactError(f"{path} is not a readable safetensors file ({err})") from None
    load_state(model, state, str(path))
    return model
