"""A user's own model: a ``module:function`` factory, a class built outside slimkit, timm."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import slimkit
from slimkit import ModelError
from slimkit.models._sources import _TRUSTED

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class UserNet(nn.Module):
        def __init__(self, num_classes: int = 10, width: int = 16) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            )
            self.head = nn.Linear(2 * width, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x).mean((2, 3)))


    def make_net(num_classes: int = 10) -> nn.Module:
        return UserNet(num_classes)
    """
)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"usernets_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    _TRUSTED.discard(f"{name}:make_net")


def _run(code: str, module_dir: Path) -> dict:
    """Run ``code`` in a new Python process that can import the user module; its JSON print."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(module_dir), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_factory_named_module_function_builds_with_the_kwargs_it_takes(user_module: str) -> None:
    model = slimkit.create_model(f"{user_module}:make_net", num_classes=7, in_channels=1)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    assert model.slimkit_arch == {
        "name": f"{user_module}:make_net",
        "kwargs": {"num_classes": 7, "in_channels": 1},
    }  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("no_such_module_xyz:make", "cannot import 'no_such_module_xyz'"),
        ("json:no_such_function", "has no function 'no_such_function'"),
        ("os:getcwd", "returned str, not a torch.nn.Module"),
    ],
)
def test_bad_factories_are_one_line_model_errors(name: str, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        slimkit.create_model(name)


def test_an_artifact_naming_a_module_loads_only_with_consent(
    user_module: str, tmp_path: Path
) -> None:
    model = slimkit.create_model(f"{user_module}:make_net").eval()
    path = slimkit.save(model, tmp_path / "net.safetensors")
    code = f"""
        import json, slimkit, torch
        try:
            slimkit.load({str(path)!r})
            refused = ""
        except slimkit.ModelError as err:
            refused = str(err)
        loaded = slimkit.load({str(path)!r}, trust_code=True)
        torch.manual_seed(0)
        x = torch.randn(4, 1, 28, 28)
        print(json.dumps({{"refused": refused, "out": loaded(x).tolist()}}))
    """
    result = _run(code, tmp_path)
    assert f"imports and runs module {user_module!r}" in result["refused"]
    assert "trust_code=True" in result["refused"] and "--trust-model-code" in result["refused"]
    torch.manual_seed(0)
    with torch.no_grad():
        expected = model(torch.randn(4, 1, 28, 28))
    assert torch.equal(torch.tensor(result["out"]), expected)


def test_a_pruned_int8_user_class_round_trips_onto_a_fresh_instance(
    user_module: str, tmp_path: Path
) -> None:
    module = importlib.import_module(user_module)
    torch.manual_seed(0)
    model = module.UserNet().eval()  # built by the user, not by slimkit
    x = torch.randn(64, 1, 28, 28)
    slim = slimkit.prune(model, slimkit.StructuredConfig(ratio=0.5), example_inputs=x[:1])
    assert slim.features[0].out_channels < 16
    q = slimkit.quantize(slim, slimkit.Int8StaticConfig(), calib_data=[x])
    path = slimkit.save(q, tmp_path / "usernet-int8.safetensors")
    with pytest.raises(ModelError, match=r"model=YourModel"):
        slimkit.load(path)
    torch.save(x[:8], tmp_path / "x.pt")
    code = f"""
        import json, slimkit, torch
        from {user_module} import UserNet
        loaded = slimkit.load({str(path)!r}, model=UserNet())
        x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)
        print(json.dumps({{"out": loaded(x).tolist()}}))
    """
    result = _run(code, tmp_path)
    with torch.no_grad():
        assert torch.equal(torch.tensor(result["out"]), q(x[:8]))


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_a_timm_model_builds_for_small_grayscale_images() -> None:
    model = slimkit.create_model("timm:resnet10t", num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ModelError, match="unknown timm model"):
        slimkit.create_model("timm:no_such_net")
