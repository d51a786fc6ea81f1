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


    def make_sized(num_classes: int = 10, width: int = 16) -> nn.Module:
        return UserNet(num_classes, width)
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
    _TRUSTED.discard(f"{name}:make_sized")


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


def test_model_args_reach_a_user_factory_and_its_artifact(user_module: str, tmp_path: Path) -> None:
    name = f"{user_module}:make_sized"
    model = slimkit.create_model(name, num_classes=7, model_args={"width": 8}).eval()
    assert model.features[0].out_channels == 8
    assert model.slimkit_arch["kwargs"] == {"num_classes": 7, "model_args": {"width": 8}}
    loaded = slimkit.load(slimkit.save(model, tmp_path / "net.safetensors"))
    assert loaded.features[0].out_channels == 8
    with pytest.raises(ModelError, match=r"make_sized rejected model_args 'depth'=2: TypeError"):
        slimkit.create_model(name, model_args={"depth": 2})


#: A ViT for 28-32 px images: 4 px patches, narrow and short (the pruning tests' size).
VIT = "timm:vit_tiny_patch16_224"
VIT_ARGS = {"patch_size": 4, "depth": 2, "embed_dim": 48, "num_heads": 3}


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_model_args_shape_a_timm_model_and_are_recorded() -> None:
    model = slimkit.create_model(VIT, model_args=VIT_ARGS).eval()
    vit = model.model
    assert vit.patch_embed.proj.kernel_size == (4, 4) and vit.patch_embed.num_patches == 64
    assert len(vit.blocks) == 2 and vit.embed_dim == 48 and vit.blocks[0].attn.num_heads == 3
    assert model.slimkit_arch == {"name": VIT, "kwargs": {"model_args": VIT_ARGS}}
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
@pytest.mark.parametrize(
    ("model_args", "error", "match"),
    [
        (
            {"patch_sise": 4},
            ModelError,
            r"^timm model 'vit_tiny_patch16_224' rejected model_args 'patch_sise'=4: TypeError: "
            r"VisionTransformer.__init__\(\) got an unexpected keyword argument 'patch_sise'$",
        ),
        (
            {"embed_dim": 96, "num_heads": 5},
            ModelError,
            r"rejected model_args 'num_heads'=5: AssertionError: dim should be divisible by",
        ),
        ({"pretrained": True}, ValueError, r"cannot set 'pretrained': slimkit builds timm"),
        ({"checkpoint_path": "w.pth"}, ValueError, r"cannot set 'checkpoint_path'"),
        ({"img_size": 64}, ValueError, r"cannot set 'img_size': slimkit sets it to max"),
        ({"in_chans": 3}, ValueError, r"cannot set 'in_chans': .* in_channels="),
        ({"num_classes": 3}, ValueError, r"cannot set 'num_classes': pass it to create_model"),
        ({"depth": float("nan")}, ValueError, r"model_args 'depth' is nan, which JSON cannot"),
        ({"act": {"name": "gelu"}}, ValueError, r"model_args 'act' is a dict; model_args values"),
        ({"patch-size": 4}, ValueError, r"model_args key 'patch-size' is not a Python argument"),
    ],
)
def test_bad_timm_model_args_are_one_line_errors_naming_the_key(
    model_args: dict, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        slimkit.create_model(VIT, model_args=model_args)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_a_timm_model_with_model_args_reloads_in_a_new_process_also_pruned(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    model = slimkit.create_model(VIT, model_args=VIT_ARGS).eval()
    x = torch.randn(8, 1, 28, 28)
    pruned = slimkit.prune(
        model, slimkit.StructuredConfig(target_macs=0.5), example_inputs=x[:1], progress=False
    )
    assert pruned.model.blocks[0].mlp.fc1.out_features < 192
    assert slimkit.count_macs(pruned, x[:1]) <= 0.55 * slimkit.count_macs(model, x[:1])
    paths = [
        slimkit.save(m, tmp_path / f"{n}.safetensors") for n, m in (("p4", model), ("half", pruned))
    ]
    torch.save(x, tmp_path / "x.pt")
    code = f"""
        import json, slimkit, torch
        x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)
        out = [slimkit.load(p)(x).tolist() for p in {[str(p) for p in paths]!r}]
        print(json.dumps({{"out": out}}))
    """
    result = _run(code, tmp_path)
    with torch.no_grad():
        for got, expected in zip(result["out"], (model(x), pruned(x)), strict=True):
            assert torch.equal(torch.tensor(got), expected)
