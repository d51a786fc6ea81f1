"""Depth pruning: which blocks are removable, and that removal survives pruning and saving."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit
from slimkit.graph import removable_blocks, remove_blocks
from slimkit.measure import count_macs
from slimkit.testing import seeded_model

X = torch.randn(2, 1, 28, 28)


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv(x))


def test_residual_blocks_of_resnet20_are_found() -> None:
    model = seeded_model("resnet20").eval()
    # The first block of stages 2 and 3 changes the shape (stride 2, projection shortcut).
    expected = [
        f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3) if (s, i) not in {(2, 0), (3, 0)}
    ]
    assert removable_blocks(model, X) == expected


def test_plain_shape_preserving_layers_are_not_blocks() -> None:
    # A conv 8->8 keeps the shape but has no skip path: without it the input is lost.
    plain = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    assert removable_blocks(plain, X) == []
    mixed = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), Residual(8), nn.Conv2d(8, 8, 1))
    assert removable_blocks(mixed, X) == ["1"]


def test_a_stage_offers_its_blocks_not_itself() -> None:
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Sequential(Residual(8), Residual(8)))
    assert removable_blocks(model, X) == ["1.0", "1.1"]


def test_remove_blocks_rejects_what_is_not_a_sequential_element() -> None:
    model = seeded_model("resnet20")
    with pytest.raises(slimkit.errors.UnsupportedOpError, match=r"nn\.Sequential"):
        remove_blocks(model, ["layer1.0.conv1"])


def test_removal_equals_identity_replacement() -> None:
    model = seeded_model("resnet20").eval()
    cfg = slimkit.StructuredConfig(ratio=0.0, remove_blocks=("layer1.1", "layer3.2"))
    pruned = slimkit.prune(model, cfg, example_inputs=X[:1], progress=False)
    by_hand = copy.deepcopy(model)
    by_hand.layer1[1] = nn.Identity()
    by_hand.layer3[2] = nn.Identity()
    with torch.no_grad():
        assert torch.equal(pruned(X), by_hand(X))
    assert isinstance(pruned.layer1[1], nn.Identity)
    assert count_macs(pruned, X[:1]) < count_macs(model, X[:1])


def test_removal_after_channel_pruning_round_trips(tmp_path: Path) -> None:
    model = seeded_model("resnet20").eval()
    cfg = slimkit.StructuredConfig(ratio=0.4, remove_blocks=("layer1.0", "layer2.2"))
    pruned = slimkit.prune(model, cfg, example_inputs=X[:1], progress=False)
    structure = pruned.slimkit_structure
    assert structure["removed"] == ["layer1.0", "layer2.2"]
    # Nothing inside a removed block is listed as resized.
    assert not [k for k in structure["tensors"] if k.startswith(("layer1.0.", "layer2.2."))]
    assert pruned.layer2[1].conv1.out_channels < 32  # the channels were pruned too
    loaded = slimkit.load(slimkit.save(pruned, tmp_path / "p.safetensors"))
    assert isinstance(loaded.layer1[0], nn.Identity) and isinstance(loaded.layer2[2], nn.Identity)
    with torch.no_grad():
        assert torch.equal(loaded(X), pruned(X))


def test_unknown_block_is_a_clear_error() -> None:
    model = seeded_model("resnet20")
    cfg = slimkit.StructuredConfig(ratio=0.0, remove_blocks=("layer2.0",))
    with pytest.raises(ValueError, match=r"layer2\.0.*removable: \['layer1\.0'"):
        slimkit.prune(model, cfg, example_inputs=X[:1], progress=False)
    with pytest.raises(ValueError, match="tuple of names"):
        slimkit.StructuredConfig(ratio=0.0, remove_blocks="layer1.0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arch", "count"),
    [("resnet18", 5), ("mobilenet_v2", 10), ("shufflenet_v2_x0_5", 13)],
)
def test_torchvision_blocks_survive_channel_pruning_and_reload(
    arch: str, count: int, tmp_path: Path
) -> None:
    model = slimkit.create_model(f"torchvision:{arch}", num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    blocks = removable_blocks(model, x)
    assert len(blocks) == count
    cfg = slimkit.StructuredConfig(ratio=0.3, remove_blocks=tuple(blocks[-2:]))
    pruned = slimkit.prune(model, cfg, example_inputs=x, progress=False)
    loaded = slimkit.load(slimkit.save(pruned, tmp_path / "p.safetensors"))
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert count_macs(pruned, x) < count_macs(model, x)


def test_int8_model_without_blocks_reloads_and_exports(tmp_path: Path) -> None:
    from slimkit.quantize import Int8StaticConfig, OrtModule, onnx_path, quantize
    from slimkit.testing import fashion_mnist_slice

    splits = fashion_mnist_slice(limit_train=256, limit_eval=128)
    model = seeded_model("resnet20").eval()
    cfg = slimkit.StructuredConfig(ratio=0.25, round_to=4, remove_blocks=("layer1.1", "layer3.1"))
    pruned = slimkit.prune(model, cfg, example_inputs=X[:1], progress=False)
    q = quantize(pruned, Int8StaticConfig(), calib_data=splits, progress=False)
    path = slimkit.save(q, tmp_path / "q.safetensors")
    loaded = slimkit.load(path)
    assert not [k for k in loaded.state_dict() if k.startswith(("layer1.1.", "layer3.1."))]
    assert [k for k in loaded.state_dict() if k.startswith("layer1.2.")]
    with torch.no_grad():
        assert torch.equal(loaded(X), q(X))
        ort = OrtModule(onnx_path(path), threads=1)(X)
    # ONNX Runtime's integer kernels round like the simulation except at ties.
    assert (ort.argmax(1) == q(X).argmax(1)).all()
