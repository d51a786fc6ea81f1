"""compress on models users bring: their own nn.Module class, their own factory module from the
CLI, and their own metric."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit
from slimkit import Splits
from slimkit.cli._main import main
from slimkit.models._sources import _TRUSTED
from slimkit.search import CompressConfig, compress
from slimkit.train import TrainConfig

FAST = {
    "trials": 2,
    "recover": "ce",
    "recover_train": TrainConfig(epochs=1),
    "sensitivity_images": 256,
}


class UserNet(nn.Module):
    """A user's own model: no slimkit registry, no architecture spec."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x).flatten(1))


@torch.no_grad()
def mean_nll(model: nn.Module, dataset: object) -> float:
    """The user's metric: mean negative log-likelihood (lower is better)."""
    total, count = 0.0, 0
    for x, y in torch.utils.data.DataLoader(dataset, batch_size=256):  # type: ignore[arg-type]
        logp = torch.log_softmax(model(x), dim=1)
        total += float(-logp[torch.arange(len(y)), y].sum())
        count += len(y)
    return total / count


def test_a_user_class_compresses_within_a_budget_in_its_own_metric(
    small_splits: Splits, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = UserNet()
    slimkit.train(model, small_splits, slimkit.TrainConfig(epochs=3, lr=3e-3), progress=False)
    model.eval()
    cfg = CompressConfig(
        max_drop=0.2, goal="size", latency_threads=1, metric=mean_nll, lower_is_better=True, **FAST
    )
    summary = compress(model, small_splits, cfg, tmp_path / "run", log=None)
    budget = summary["budget"]
    assert budget["metric"] == {"name": f"{__name__}:mean_nll", "lower_is_better": True}
    baseline_nll = mean_nll(model, small_splits.val)
    assert summary["baseline"]["val_accuracy"] == pytest.approx(baseline_nll, rel=1e-6)
    # The drop is an increase of the loss, within the budget.
    assert budget["val_drop"] == pytest.approx(
        summary["result"]["val_accuracy"] - summary["baseline"]["val_accuracy"]
    )
    assert budget["val_drop"] <= 0.2
    loaded = slimkit.load(summary["files"]["artifact"], model=UserNet())
    x = small_splits.example_input(16)
    from slimkit.quantize import OrtModule

    with torch.no_grad():
        torch.testing.assert_close(
            loaded(x), OrtModule(summary["files"]["onnx"], threads=1)(x), atol=1e-4, rtol=1e-4
        )
    assert "mean_nll" in Path(summary["files"]["report"]).with_suffix(".md").read_text()


USER_MODULE = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
        )
    """
)


def test_a_factory_in_a_user_module_goes_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = f"usercnn_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    limits = ["--limit-train", "1024", "--limit-eval", "512", "--device", "cpu"]
    artifact = tmp_path / "m.safetensors"
    train = ["train", "--model", f"{module}:make_net", "--epochs", "2", "--out", str(artifact)]
    assert main([*train, *limits]) == 0
    capsys.readouterr()
    _TRUSTED.discard(f"{module}:make_net")  # a new process: nothing imported yet
    run = ["compress", str(artifact), "--max-drop", "2.0", "--goal", "latency", "--trials", "2"]
    run += ["--recover", "ce", "--recover-epochs", "1", "--threads", "1", "--json"]
    assert main([*run, "--out", str(tmp_path / "refused"), *limits]) == 1
    assert "--trust-model-code" in capsys.readouterr().err
    out = ["--out", str(tmp_path / "run"), "--trust-model-code"]
    assert main([*run, *out, *limits]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["budget"]["val_drop"] <= 2.0
    assert summary["result"]["backend"] == "onnxruntime"
    spec = slimkit.read_spec(summary["files"]["artifact"])
    assert spec["arch"]["name"] == f"{module}:make_net"
    _TRUSTED.discard(f"{module}:make_net")
