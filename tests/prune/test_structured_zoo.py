"""Structured pruning on torchvision classifiers nobody here wrote.

The default run prunes a representative model of each family at the smallest sensible input;
the whole zoo is the ``slow`` tier (``scripts/coverage.py`` writes the same sweep to
``docs/coverage.md``).
"""

from __future__ import annotations

import pytest
import torch

from slimkit.testing import check_structured, exactness_gap, torchvision_case

FAST = [
    "resnet18",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_x_400mf",
    "regnet_y_400mf",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "googlenet",
    "mnasnet0_5",
]
SLOWER = ["densenet121", "convnext_tiny", "vit_b_16", "swin_t", "swin_v2_t", "inception_v3"]


def _small_family(name: str) -> torch.nn.Module:
    """The torchvision classes of the SLOWER models at a width a unit test can afford."""
    from torchvision import models
    from torchvision.models.convnext import CNBlockConfig

    if name == "densenet":
        return models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16)
    if name == "convnext":
        return models.ConvNeXt([CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 2)])
    if name.startswith("swin"):
        from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformerBlockV2

        v2 = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2}
        return models.SwinTransformer(
            [4, 4], 16, [1, 1], [2, 4], [4, 4], **(v2 if name == "swin_v2" else {})
        )
    return models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128
    )


def _check(name: str) -> None:
    model, example = torchvision_case(name)
    result = check_structured(model, example, ratio=0.5)
    assert result["ok"], result.get("reason")
    assert result["macs_after"] < 0.6 * result["macs_before"]


@pytest.mark.parametrize("name", FAST)
def test_representative_models_prune(name: str) -> None:
    _check(name)


@pytest.mark.parametrize("family", ["densenet", "convnext", "vit", "swin", "swin_v2"])
def test_small_members_of_the_larger_families_prune(family: str) -> None:
    model, example = _small_family(family).eval(), torch.randn(1, 3, 32, 32)
    result = check_structured(model, example, ratio=0.5)
    assert result["ok"], result.get("reason")
    assert result["macs_after"] < 0.6 * result["macs_before"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in SLOWER])
def test_larger_representatives_prune(name: str) -> None:
    _check(name)


@pytest.mark.parametrize(
    "name", ["mobilenet_v2", "googlenet", "shufflenet_v2_x0_5", "regnet_y_400mf"]
)
def test_zoo_exactness(name: str) -> None:
    from slimkit.testing import fixed_init_

    model, example = torchvision_case(name)
    fixed_init_(model, scale=0.1)  # torchvision's init gives near-zero logits at random weights
    with torch.no_grad():
        scale = model(example).abs().max().item()
    assert exactness_gap(model, example) <= 1e-5 * scale + 1e-7


def _zoo() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


@pytest.mark.slow
@pytest.mark.parametrize("name", _zoo())
def test_whole_zoo_prunes(name: str) -> None:
    _check(name)


def _without_layer_norm(model: torch.nn.Module) -> torch.nn.Module:
    """LayerNorm over pruned channels renormalises the rest (pruning is not exact there by
    design); with it replaced by Identity the surgery itself must be exact."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.LayerNorm):
                setattr(module, child_name, torch.nn.Identity())
    return model


@pytest.mark.parametrize("family", ["convnext", "vit", "swin", "swin_v2"])
def test_transformer_surgery_is_exact_without_layer_norm(family: str) -> None:
    from slimkit.testing import fixed_init_

    model = _without_layer_norm(fixed_init_(_small_family(family), scale=0.1)).eval()
    example = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        scale = model(example).abs().max().item()
    assert scale > 0
    assert exactness_gap(model, example) <= 1e-5 * scale + 1e-7
