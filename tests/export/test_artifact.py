from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from slimkit import (
    ArtifactError,
    Global,
    ModelError,
    UnstructuredConfig,
    load,
    load_weights,
    prune,
    read_spec,
    save,
)
from slimkit.testing import seeded_model

X = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(7))


def _sparse_seed_cnn(sparsity: float) -> nn.Module:
    model = seeded_model("seed-cnn")
    return prune(model, UnstructuredConfig(sparsity=sparsity, scope=Global()), progress=False)


def _outputs(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


def _assert_same_model(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    assert torch.equal(_outputs(a), _outputs(b))


def _header(path: Path) -> tuple[int, dict[str, dict]]:
    """safetensors layout: u64 header length, JSON header, then the tensors' bytes."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return 8 + length, json.loads(raw[8 : 8 + length])


@pytest.mark.parametrize("sparse", [True, False])
def test_dense_model_round_trip(tmp_path: Path, sparse: bool) -> None:
    model = seeded_model("seed-cnn")
    path = save(model, tmp_path / "dense.safetensors", sparse=sparse)
    loaded = load(path)
    _assert_same_model(model, loaded)
    assert not loaded.training
    assert {e["encoding"] for e in read_spec(path)["tensors"].values()} == {"dense"}


def test_sparse_model_round_trip(tmp_path: Path) -> None:
    model = _sparse_seed_cnn(0.9)
    path = save(model, tmp_path / "sparse.safetensors")
    loaded = load(path)
    _assert_same_model(model, loaded)
    tensors = read_spec(path)["tensors"]
    assert tensors["fc1.weight"]["encoding"] in ("bitmask-zlib", "gaps-zlib")
    assert tensors["fc1.weight"]["nnz"] == int((model.fc1.weight != 0).sum())
    assert tensors["fc2.bias"]["encoding"] == "dense"  # no zeros to exploit


def test_model_with_batchnorm_buffers_round_trip(tmp_path: Path) -> None:
    model = seeded_model("resnet20")
    model.train()(X)  # moves running stats and num_batches_tracked (a 0-dim int64 buffer)
    loaded = load(save(model, tmp_path / "resnet20.safetensors"))
    _assert_same_model(model, loaded)
    assert int(loaded.bn1.num_batches_tracked) == 1


def test_sparse_file_shrinks_with_sparsity(tmp_path: Path) -> None:
    model = _sparse_seed_cnn(0.95)
    dense = save(model, tmp_path / "dense.safetensors", sparse=False).stat().st_size
    sparse = save(model, tmp_path / "sparse.safetensors").stat().st_size
    assert dense > 206_922 * 4  # every float32 parameter is stored
    assert dense / sparse >= 6.0, (dense, sparse)


def test_sparse_int8_weights_are_stored_compactly_and_round_trip(tmp_path: Path) -> None:
    from slimkit.quantize import Int8StaticConfig, quantize

    sparse = _sparse_seed_cnn(0.9)
    q = quantize(sparse, Int8StaticConfig(calib_batches=1), calib_data=X, progress=False)
    path = save(q, tmp_path / "q.safetensors")
    int8 = {k: v for k, v in q.state_dict().items() if v.dtype == torch.int8}
    assert int8
    fc1 = read_spec(path)["tensors"]["fc1.weight"]  # 97% of the weights
    assert fc1["encoding"].endswith("+values-zlib") and fc1["dtype"] == "int8"
    assert fc1["nnz"] == int((int8["fc1.weight"] != 0).sum()) < 0.15 * int8["fc1.weight"].numel()
    dense_int8_bytes = sum(v.numel() for v in int8.values())
    assert path.stat().st_size < 0.5 * dense_int8_bytes
    loaded = load(path)
    for name, value in q.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    with torch.no_grad():
        assert torch.equal(loaded.eval()(X), q.eval()(X))


def test_spec_keeps_provenance_and_metrics(tmp_path: Path) -> None:
    model = seeded_model("seed-cnn-slim", num_classes=10)
    path = save(model, tmp_path / "m.safetensors", provenance={"recipe": "t"}, metrics={"a": 1.5})
    spec = read_spec(path)
    assert spec["format"] == "slimkit-artifact"
    assert spec["arch"] == {"name": "seed-cnn-slim", "kwargs": {"num_classes": 10}}
    assert (spec["provenance"], spec["metrics"]) == ({"recipe": "t"}, {"a": 1.5})
    # Saving a loaded model again keeps what its spec said unless told otherwise.
    again = read_spec(save(load(path), tmp_path / "again.safetensors"))
    assert (again["provenance"], again["metrics"]) == ({"recipe": "t"}, {"a": 1.5})


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0])
def test_truncated_file_is_an_artifact_error(tmp_path: Path, keep: float) -> None:
    path = save(_sparse_seed_cnn(0.5), tmp_path / "m.safetensors")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ArtifactError, match="truncated or corrupted"):
        load(path)


@pytest.mark.parametrize("tensor", ["fc2.bias", "fc1.weight::values", "fc1.weight::pattern"])
def test_one_flipped_byte_fails_the_checksum(tmp_path: Path, tensor: str) -> None:
    path = save(_sparse_seed_cnn(0.9), tmp_path / "m.safetensors")
    data_start, header = _header(path)
    begin, end = header[tensor]["data_offsets"]
    raw = bytearray(path.read_bytes())
    raw[data_start + (begin + end) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=f"tensor '{tensor}' .*fails its checksum"):
        load(path)


def test_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load(tmp_path / "absent.safetensors")


def test_newer_format_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = save(seeded_model("seed-cnn-slim"), tmp_path / "m.safetensors")
    spec = read_spec(path)
    spec["format_version"] = 99
    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(path), metadata={"slimkit": json.dumps(spec)})
    with pytest.raises(ArtifactError, match="upgrade slimkit"):
        load(path)


def test_plain_safetensors_needs_load_weights(tmp_path: Path) -> None:
    model = seeded_model("seed-cnn")
    path = tmp_path / "plain.safetensors"
    save_file(model.state_dict(), str(path))
    with pytest.raises(ArtifactError, match=r"without a slimkit spec.*slimkit\.load_weights"):
        load(path)
    fresh = seeded_model("seed-cnn", seed=1)
    assert not torch.equal(_outputs(fresh), _outputs(model))
    _assert_same_model(model, load_weights(fresh, path))


def test_load_weights_reads_slimkit_artifacts(tmp_path: Path) -> None:
    model = _sparse_seed_cnn(0.9)
    path = save(model, tmp_path / "m.safetensors")
    _assert_same_model(model, load_weights(seeded_model("seed-cnn", seed=1), path))


def test_load_weights_into_another_width_names_the_tensor(tmp_path: Path) -> None:
    path = save(seeded_model("seed-cnn"), tmp_path / "m.safetensors")
    with pytest.raises(ModelError, match=r"tensor 'conv1.weight' has shape \[16, 1, 3, 3\]"):
        load_weights(seeded_model("seed-cnn-slim"), path)


def test_load_weights_into_another_architecture_names_tensors(tmp_path: Path) -> None:
    path = save(seeded_model("seed-cnn"), tmp_path / "m.safetensors")
    with pytest.raises(ModelError, match=r"does not match this architecture: missing \['bn1"):
        load_weights(seeded_model("resnet20"), path)


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _sparse_seed_cnn(0.9)
    path = save(model, tmp_path / "m.safetensors")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an artifact must load without pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    _assert_same_model(model, load(path))
    # The file is plain safetensors: any safetensors reader sees JSON metadata and raw tensors.
    with safe_open(str(path), framework="numpy") as handle:
        assert json.loads(handle.metadata()["slimkit"])["format"] == "slimkit-artifact"
        assert handle.get_tensor("fc2.bias").shape == (10,)


def test_artifact_is_readable_by_others_like_any_new_file(tmp_path: Path) -> None:
    # safetensors creates files as 0600; a served artifact must follow the umask like open()
    import os
    import stat

    import slimkit

    previous = os.umask(0o022)
    try:
        path = slimkit.save(slimkit.create_model("seed-cnn"), tmp_path / "m.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_version_3_lists_only_non_dense_tensors_and_loads_back(tmp_path: Path) -> None:
    import slimkit
    from slimkit.quantize import Int8StaticConfig, quantize
    from slimkit.testing import random_splits

    model = slimkit.create_model("seed-cnn").eval()
    q = quantize(
        model, Int8StaticConfig(calib_batches=1), calib_data=random_splits(), progress=False
    )
    path = slimkit.save(q, tmp_path / "q.safetensors")
    spec = read_spec(path)
    assert spec["format_version"] == 3
    assert spec["tensors"] == {}  # every tensor is dense: the safetensors header describes them
    assert isinstance(spec["checksums"], list)
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(slimkit.load(path)(x), q(x), rtol=0, atol=0)


def _sparse_int8_seed_cnn() -> nn.Module:
    from slimkit.quantize import Int8StaticConfig, quantize

    return quantize(
        _sparse_seed_cnn(0.9), Int8StaticConfig(calib_batches=1), calib_data=X, progress=False
    )


def test_sparse_quantized_artifacts_are_packed_with_a_small_header(tmp_path: Path) -> None:
    q = _sparse_int8_seed_cnn()
    path = save(q, tmp_path / "q.safetensors")
    spec = read_spec(path)
    assert spec["format_version"] == 4 and spec["quantization"]["scheme"] == "int8-static"
    assert spec["tensors"]["fc1.weight"]["encoding"].startswith(("bitmask", "gaps"))
    data_start, header = _header(path)
    assert set(header) - {"__metadata__"} == {"slimkit::packed"}
    assert header["slimkit::packed"]["dtype"] == "U8"
    # One entry per stored tensor in the spec's index, all of the blob's bytes accounted for.
    names = [name for name, _, _ in spec["packed"]]
    assert names == sorted(names) and "fc1.weight::pattern" in names and "fc2.bias" in names
    begin, end = header["slimkit::packed"]["data_offsets"]
    assert path.stat().st_size == data_start + end - begin
    # The whole header (zlib-coded spec and index) is smaller than the plain spec alone was.
    assert data_start < len(json.dumps(spec, separators=(",", ":")))
    loaded = load(path)
    _assert_same_model(q, loaded)
    again = read_spec(save(loaded, tmp_path / "again.safetensors"))
    # The reloaded int8 graph is exported again: the same numbers, not always the same bytes.
    assert {k: v for k, v in again.items() if k != "onnx_sha256"} == {
        k: v for k, v in spec.items() if k != "onnx_sha256"
    }


def test_a_flipped_byte_in_a_packed_artifact_names_the_tensor(tmp_path: Path) -> None:
    path = save(_sparse_int8_seed_cnn(), tmp_path / "q.safetensors")
    spec = read_spec(path)
    sizes = [
        torch.empty(shape, dtype=getattr(torch, dtype)).nbytes for _, dtype, shape in spec["packed"]
    ]
    target = [name for name, _, _ in spec["packed"]].index("fc1.weight::values")
    offset = sum(sizes[:target]) + sizes[target] // 2
    data_start, header = _header(path)
    raw = bytearray(path.read_bytes())
    raw[data_start + header["slimkit::packed"]["data_offsets"][0] + offset] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"tensor 'fc1\.weight::values' .*fails its checksum"):
        load(path)


def test_a_packed_index_that_does_not_fit_the_blob_is_an_artifact_error(tmp_path: Path) -> None:
    path = save(_sparse_int8_seed_cnn(), tmp_path / "q.safetensors")
    spec = read_spec(path)
    with safe_open(str(path), framework="pt") as handle:
        blob = handle.get_tensor("slimkit::packed")
    from slimkit.export._artifact import _spec_text

    for broken in (spec["packed"][:-1], [*spec["packed"], ["extra", "float32", [4096]]]):
        save_file(
            {"slimkit::packed": blob},
            str(path),
            metadata={"slimkit": _spec_text({**spec, "packed": broken})},
        )
        with pytest.raises(ArtifactError, match="truncated or corrupted"):
            load(path)
    save_file(
        {"slimkit::packed": blob},
        str(path),
        metadata={
            "slimkit": '{"format": "slimkit-artifact", "format_version": 4, "spec_zlib": "bm90IHpsaWI="}'
        },
    )
    with pytest.raises(ArtifactError, match="corrupted slimkit spec"):
        load(path)
