"""CUDA paths, run by scripts/gpu_check.sh on a machine with a GPU (marker ``gpu``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.measure import evaluate_accuracy
from slimkit.prune import prunable_layers

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.fail("the gpu tier needs CUDA; run it on a GPU machine (scripts/gpu_check.sh)")
    return torch.device("cuda")


def test_auto_device_picks_cuda(cuda: torch.device) -> None:
    assert slimkit._device.resolve_device("auto").type == "cuda"


def test_train_and_prune_on_cuda_match_cpu_semantics(
    cuda: torch.device, fmnist: slimkit.Splits, tmp_path: Path
) -> None:
    model = slimkit.create_model("seed-cnn")
    slimkit.train(model, fmnist, slimkit.TrainConfig(epochs=1), device=cuda, progress=False)
    assert next(model.parameters()).device.type == "cuda"
    cfg = slimkit.UnstructuredConfig(sparsity=0.8, importance="taylor")
    pruned = slimkit.prune(
        model, cfg, data=fmnist, finetune=slimkit.TrainConfig(epochs=1), device=cuda
    )
    weights = [m.weight for m in prunable_layers(pruned).values()]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.8 * sum(w.numel() for w in weights))
    cpu_copy = slimkit.load_weights(slimkit.create_model("seed-cnn"), _saved(pruned, tmp_path))
    assert (
        abs(
            evaluate_accuracy(cpu_copy, fmnist.test)
            - evaluate_accuracy(pruned, fmnist.test, device=cuda)
        )
        < 1.0
    )


def _saved(model: torch.nn.Module, tmp_path: Path) -> Path:
    path = tmp_path / "pruned.safetensors"
    slimkit.save(model.cpu(), path)
    model.cuda()
    return path


def test_profile_on_cuda_reports_cuda_latency(cuda: torch.device, fmnist: slimkit.Splits) -> None:
    model = slimkit.create_model("resnet20")
    result = slimkit.profile(model, fmnist, device=cuda)
    assert result.device.startswith("cuda")
    assert result.latency_ms_b64 > 0 and result.macs > 0
