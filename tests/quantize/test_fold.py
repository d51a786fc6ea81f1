from __future__ import annotations

import copy

import torch
from torch import nn

import slimkit
from slimkit.quantize import conv_bn_pairs, fold_batchnorm


def _randomize_bn(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)


def test_bn_folding_is_exact_to_float_tolerance_on_resnet20() -> None:
    model = slimkit.create_model("resnet20").eval()
    _randomize_bn(model)
    folded = copy.deepcopy(model)
    pairs = fold_batchnorm(folded)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert len(pairs) == 21  # 19 convs + 2 projection shortcuts, each followed by its BN
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_bn_not_folded_when_conv_output_is_shared() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y

    assert conv_bn_pairs(Shared().eval()) == []
