"""Where the teacher runs: the fastest faithful engine by measurement, PyTorch where it must."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
from torch import nn

import slimkit
from slimkit import DistillConfig, ModelError, Splits, TrainConfig, distill
from slimkit.data._splits import take
from slimkit.distill import _teacher
from slimkit.distill._api import _cache_logits
from slimkit.distill._teacher import teacher_runner
from slimkit.testing import seeded_model

pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    return seeded_model("seed-cnn").eval()


@pytest.fixture(scope="module")
def batch(fmnist: Splits) -> torch.Tensor:
    return torch.stack([fmnist.train[i][0] for i in range(16)])


def _stand_in_timer(monkeypatch: pytest.MonkeyPatch, seconds: dict[str, float]) -> None:
    """Replace the clock: each runner's "time" is looked up by the runtime it was built for."""
    built: dict[int, str] = {}
    load = _teacher._load_runtime

    def tagged_load(name: str, *args: object) -> object:
        runner = load(name, *args)  # type: ignore[arg-type]
        built[id(runner)] = name
        return runner

    monkeypatch.setattr(_teacher, "_load_runtime", tagged_load)
    monkeypatch.setattr(
        _teacher, "_median_seconds", lambda run, x: seconds[built.get(id(run), "torch")]
    )


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"torch": 3.0, "onnxruntime": 1.0, "openvino": 2.0}, "onnxruntime"),
        ({"torch": 3.0, "onnxruntime": 2.0, "openvino": 1.0}, "openvino"),
        ({"torch": 1.0, "onnxruntime": 2.0, "openvino": 3.0}, "torch"),
    ],
)
def test_auto_follows_the_timings(
    teacher: nn.Module,
    batch: torch.Tensor,
    monkeypatch: pytest.MonkeyPatch,
    times: dict[str, float],
    expected: str,
) -> None:
    pytest.importorskip("openvino")
    _stand_in_timer(monkeypatch, times)
    with teacher_runner(teacher, batch, "auto", device=CPU, uses_features=False) as runner:
        assert runner.runtime == expected
        assert runner.seconds == times
        with torch.no_grad():
            expected_logits = teacher(batch)
        torch.testing.assert_close(runner.forward(batch), expected_logits, atol=1e-4, rtol=1e-4)


def test_feature_losses_and_explicit_torch_keep_pytorch(
    teacher: nn.Module, batch: torch.Tensor
) -> None:
    for choice, features in (("auto", True), ("torch", False), ("onnxruntime", True)):
        with teacher_runner(teacher, batch, choice, device=CPU, uses_features=features) as run:
            assert run.runtime == "torch" and run.seconds == {}


def test_a_runtime_that_disagrees_is_skipped_or_refused(
    teacher: nn.Module, batch: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_teacher, "_agrees", lambda candidate, reference: False)
    with teacher_runner(teacher, batch, "auto", device=CPU, uses_features=False) as runner:
        assert runner.runtime == "torch" and set(runner.seconds) == {"torch"}
    with (
        pytest.raises(ModelError, match=r"differ from PyTorch's.*teacher_runtime='torch'"),
        teacher_runner(teacher, batch, "onnxruntime", device=CPU, uses_features=False),
    ):
        pass


def test_a_teacher_on_onnxruntime_teaches_what_pytorch_teaches(
    teacher: nn.Module, fmnist: Splits
) -> None:
    small = dataclasses.replace(fmnist, train=take(fmnist.train, 256))
    train = TrainConfig(epochs=2, lr=2e-3, batch_size=32, augment="crop-flip", seed=3)
    students = {}
    for runtime in ("torch", "onnxruntime"):
        student = seeded_model("seed-cnn-slim")
        cfg = DistillConfig(train=train, teacher_runtime=runtime)
        distill(student, teacher, small, cfg, progress=False)
        students[runtime] = student
    a, b = students["torch"].state_dict(), students["onnxruntime"].state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-3, rtol=1e-3, msg=name)
    changed = seeded_model("seed-cnn-slim").state_dict()
    assert not all(torch.equal(changed[k], a[k]) for k in a)  # it did train


def test_augmented_views_get_their_own_logits(teacher: nn.Module, fmnist: Splits) -> None:
    plain = DistillConfig(train=TrainConfig(epochs=1))
    augmented = DistillConfig(train=TrainConfig(epochs=1, augment="crop-flip"))
    assert _cache_logits(teacher, fmnist, plain, CPU) is not None
    assert _cache_logits(teacher, fmnist, augmented, CPU) is None


def test_teacher_runtime_is_validated() -> None:
    with pytest.raises(ValueError, match=r"teacher_runtime must be one of.*onnxruntime"):
        DistillConfig(teacher_runtime="tensorrt")
    cfg = DistillConfig(teacher_runtime="onnxruntime")
    assert DistillConfig.from_dict(cfg.to_dict()) == cfg
    assert slimkit.DistillConfig().teacher_runtime == "auto"


def test_a_teacher_that_cannot_be_exported_runs_in_pytorch(
    batch: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_export(*args: object) -> None:
        raise TypeError("cannot pickle 'InferenceSession' object")

    # slimkit.quantize is also the name of the verb: patch the package itself
    monkeypatch.setattr(sys.modules["slimkit.quantize"], "export_fp32", broken_export)
    teacher = seeded_model("seed-cnn").eval()
    with teacher_runner(teacher, batch, "auto", device=CPU, uses_features=False) as runner:
        assert runner.runtime == "torch"
    with (
        pytest.raises(ModelError, match="cannot run on onnxruntime: cannot pickle"),
        teacher_runner(teacher, batch, "onnxruntime", device=CPU, uses_features=False),
    ):
        pass
