from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit import ModelError, create_model
from slimkit.models import arch_of, check_model_args, model_names, torchvision_classifiers


def _logits(model: nn.Module, batch: int = 2) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(batch, 1, 28, 28))


def test_registry_holds_the_builtin_models() -> None:
    assert {"seed-cnn", "seed-cnn-slim", "resnet8", "resnet20", "resnet56"} <= set(model_names())


def test_cifar_resnets_differ_by_blocks_per_stage() -> None:
    blocks = {
        name: sum(len(stage) for stage in (m.layer1, m.layer2, m.layer3))
        for name in ("resnet8", "resnet20", "resnet56")
        for m in [create_model(name)]
    }
    assert blocks == {"resnet8": 3, "resnet20": 9, "resnet56": 27}


@pytest.mark.parametrize("name", model_names())
def test_registered_model_classifies_fashion_mnist_inputs(name: str) -> None:
    out = _logits(create_model(name))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


# alexnet: its pooling stages need a 63-pixel input, so the adapter must upsample further.
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "alexnet"])
def test_torchvision_model_on_grayscale_28x28(name: str) -> None:
    model = create_model(f"torchvision:{name}")
    assert _logits(model).shape == (2, 10)
    assert arch_of(model) == {"name": f"torchvision:{name}", "kwargs": {}}


@pytest.mark.slow
@pytest.mark.parametrize("name", torchvision_classifiers())
def test_every_torchvision_classifier_on_grayscale_28x28(name: str) -> None:
    assert _logits(create_model(f"torchvision:{name}"), batch=1).shape == (1, 10)


def test_num_classes_and_arch_are_recorded() -> None:
    model = create_model("seed-cnn", num_classes=7, image_size=28)
    assert model.slimkit_arch == {
        "name": "seed-cnn",
        "kwargs": {"num_classes": 7, "image_size": 28},
    }
    assert arch_of(model) == model.slimkit_arch
    assert _logits(model).shape == (2, 7)


def test_arch_of_a_foreign_model_is_a_model_error() -> None:
    with pytest.raises(ModelError, match=r"slimkit.create_model\(name"):
        arch_of(nn.Linear(2, 2))


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelError) as info:
        create_model("resnet21")
    message = str(info.value)
    assert "unknown model 'resnet21'" in message
    assert "known: resnet20, resnet56, resnet8, seed-cnn, seed-cnn-slim" in message
    assert "torchvision:<name>" in message


def test_unknown_torchvision_name_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown torchvision classification model 'resnet7'"):
        create_model("torchvision:resnet7")


def test_bad_factory_arguments_are_a_model_error() -> None:
    with pytest.raises(ModelError, match="cannot build model 'seed-cnn'"):
        create_model("seed-cnn", width=3)


def test_model_args_reach_torchvision_and_are_recorded_as_json() -> None:
    half = create_model("torchvision:mobilenet_v2", model_args={"width_mult": 0.5})
    full = create_model("torchvision:mobilenet_v2")
    assert sum(p.numel() for p in half.parameters()) < sum(p.numel() for p in full.parameters())
    assert half.slimkit_arch == {
        "name": "torchvision:mobilenet_v2",
        "kwargs": {"model_args": {"width_mult": 0.5}},
    }
    assert full.slimkit_arch == {"name": "torchvision:mobilenet_v2", "kwargs": {}}
    sized = create_model("seed-cnn", model_args=None, num_classes=4)
    assert sized.slimkit_arch == {"name": "seed-cnn", "kwargs": {"num_classes": 4}}


def test_model_args_tuples_are_recorded_as_the_lists_json_gives_back() -> None:
    assert check_model_args({"depths": (2, (1, 1)), "act": "gelu"}) == {
        "depths": [2, [1, 1]],
        "act": "gelu",
    }


@pytest.mark.parametrize(
    ("name", "model_args", "error", "match"),
    [
        ("seed-cnn", {"width": 3}, ModelError, r"model 'seed-cnn' rejected model_args 'width'=3"),
        (
            "torchvision:mobilenet_v2",
            {"widthmult": 0.5},
            ModelError,
            r"torchvision model 'mobilenet_v2' rejected model_args 'widthmult'=0.5: TypeError",
        ),
        ("torchvision:resnet18", {"weights": "DEFAULT"}, ValueError, r"cannot set 'weights'"),
        ("resnet20", {"in_channels": 3}, ValueError, r"cannot set 'in_channels': pass it to"),
        ("resnet20", [("depth", 3)], ValueError, r"model_args is a mapping of argument names"),
    ],
)
def test_bad_model_args_name_the_key(
    name: str, model_args: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        create_model(name, model_args=model_args)  # type: ignore[arg-type]
