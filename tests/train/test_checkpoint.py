from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from slimkit import ArtifactError, ModelError
from slimkit.testing import seeded_model
from slimkit.train import load_checkpoint, save_checkpoint


def _stepped(name: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A model and an Adam optimizer after one step, so the optimizer has state to save."""
    model = seeded_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    F.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    return model, optimizer


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model, optimizer = _stepped("seed-cnn-slim")
    save_checkpoint(tmp_path / "c.ckpt", model, optimizer, {"epoch": 1, "history": {"x": [1.5]}})
    fresh = seeded_model("seed-cnn-slim", seed=1)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    info = load_checkpoint(tmp_path / "c.ckpt", fresh, fresh_optimizer)
    assert info["epoch"] == 1 and info["history"] == {"x": [1.5]}
    assert info["arch"] == {"name": "seed-cnn-slim", "kwargs": {}}
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    saved, loaded = optimizer.state_dict(), fresh_optimizer.state_dict()
    for index, state in saved["state"].items():
        for key, value in state.items():
            assert torch.equal(loaded["state"][index][key], value), (index, key)


def test_checkpoint_of_another_architecture_is_a_model_error(tmp_path: Path) -> None:
    model, optimizer = _stepped("seed-cnn")
    save_checkpoint(tmp_path / "c.ckpt", model, optimizer, {"epoch": 1})
    other = seeded_model("seed-cnn-slim")
    with pytest.raises(
        ModelError, match=r"written for \{'name': 'seed-cnn',.*not \{'name': 'seed-cnn-slim'"
    ):
        load_checkpoint(tmp_path / "c.ckpt", other, torch.optim.Adam(other.parameters()))


def test_unreadable_checkpoint_is_an_artifact_error(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    model = seeded_model("seed-cnn-slim")
    with pytest.raises(ArtifactError, match="delete it to start over"):
        load_checkpoint(path, model, torch.optim.Adam(model.parameters()))
