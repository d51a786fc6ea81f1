"""``slimkit distill``, ``slimkit slim`` and ``slimkit prune --recover`` (in-process, tiny data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.cli import build_parser
from slimkit.cli._main import main
from slimkit.testing import seeded_model

TINY = ["--limit-train", "200", "--limit-eval", "100", "--device", "cpu"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slimkit.save(seeded_model("seed-cnn"), tmp_path_factory.mktemp("kd") / "t.safetensors")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main([*argv, *TINY])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 and "--json" in argv else {}, captured.err


def test_distill_a_new_student(teacher: Path, tmp_path: Path, capsys, fmnist) -> None:
    out = tmp_path / "s.safetensors"
    argv = ["distill", "--teacher", str(teacher), "--student", "seed-cnn-slim", "--out", str(out)]
    code, result, _ = _run([*argv, "--epochs", "1", "--hint", "auto", "--json"], capsys)
    assert code == 0
    assert result["out"] == str(out) and result["macs"] < result["teacher_macs"] / 3
    assert {"test_accuracy", "val_accuracy", "teacher_test_accuracy"} <= result.keys()
    spec = slimkit.read_spec(out)
    assert spec["arch"]["name"] == "seed-cnn-slim"
    assert spec["provenance"]["command"] == "distill"
    assert spec["provenance"]["config"]["hint_layers"] == "auto"
    assert spec["provenance"]["student"] == {"model": "seed-cnn-slim"}
    assert not out.with_name(out.name + ".ckpt").exists()
    assert slimkit.load(out).conv1.out_channels == 8


def test_distill_into_an_artifact_with_named_hints(
    teacher: Path, tmp_path: Path, capsys, fmnist
) -> None:
    student = slimkit.save(seeded_model("seed-cnn-slim"), tmp_path / "student.safetensors")
    out = tmp_path / "s.safetensors"
    argv = ["distill", "--teacher", str(teacher), "--student", str(student), "--out", str(out)]
    code, _, err = _run([*argv, "--epochs", "1", "--hint", "conv2:conv2,fc1:fc1"], capsys)
    assert code == 0, err
    spec = slimkit.read_spec(out)
    assert spec["provenance"]["config"]["hint_layers"] == [["conv2", "conv2"], ["fc1", "fc1"]]
    assert spec["provenance"]["student"]["parent"] == str(student)


def test_distill_with_dkd_on_augmented_views(teacher: Path, tmp_path: Path, capsys, fmnist) -> None:
    out = tmp_path / "s.safetensors"
    argv = ["distill", "--teacher", str(teacher), "--student", "seed-cnn-slim", "--out", str(out)]
    flags = ["--epochs", "1", "--logit-loss", "dkd", "--beta", "2", "--augment", "crop-flip"]
    code, _, err = _run([*argv, *flags, "--teacher-runtime", "onnxruntime"], capsys)
    assert code == 0, err
    config = slimkit.read_spec(out)["provenance"]["config"]
    assert (config["logit_loss"], config["beta"]) == ("dkd", 2.0)
    assert config["train"]["augment"] == "crop-flip"
    assert config["teacher_runtime"] == "onnxruntime"


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (["--temperature", "0"], 2, "temperature must be a finite number > 0"),
        (["--alpha", "2"], 2, r"alpha must be in [0, 1]"),
        (["--beta", "-1"], 2, "beta must be a finite number >= 0"),
        (["--hint", "conv1"], 2, "--hint takes 'auto' or student_layer:teacher_layer pairs"),
        (["--hint", "conv1:layer9"], 2, "the teacher has no module 'layer9'"),
    ],
)
def test_distill_bad_flags(
    teacher: Path, tmp_path: Path, capsys, fmnist, flags: list[str], code: int, message: str
) -> None:
    out = tmp_path / "s.safetensors"
    argv = ["distill", "--teacher", str(teacher), "--student", "seed-cnn-slim", "--out", str(out)]
    result, _, err = _run([*argv, "--epochs", "1", *flags], capsys)
    assert result == code
    assert err.startswith("slimkit: error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_distill_between_different_class_counts(
    teacher: Path, tmp_path: Path, capsys, fmnist
) -> None:
    five = slimkit.save(
        slimkit.create_model("seed-cnn-slim", num_classes=5), tmp_path / "five.safetensors"
    )
    argv = ["distill", "--teacher", str(teacher), "--student", str(five)]
    code, _, err = _run([*argv, "--out", str(tmp_path / "s.safetensors")], capsys)
    assert code == 1 and "same number of classes" in err


def test_slim_warm_with_distillation(teacher: Path, tmp_path: Path, capsys, fmnist) -> None:
    out = tmp_path / "half.safetensors"
    argv = ["slim", str(teacher), "--width", "0.5", "--distill-epochs", "1", "--out", str(out)]
    code, result, _ = _run([*argv, "--json"], capsys)
    assert code == 0
    assert result["macs"] == 333_056 and result["teacher_macs"] == 1_218_048
    spec = slimkit.read_spec(out)
    assert spec["provenance"]["slim"] == {
        "width": 0.5,
        "init": "warm",
        "importance": "l2",
        "round_to": 1,
    }
    assert spec["provenance"]["distill"]["train"]["epochs"] == 1
    model = slimkit.load(out)
    assert model.conv2.out_channels == 16
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert model(x).shape == (2, 10)


def test_slim_scratch_without_training(teacher: Path, tmp_path: Path, capsys, fmnist) -> None:
    out = tmp_path / "half.safetensors"
    argv = ["slim", str(teacher), "--init", "scratch", "--distill-epochs", "0", "--out", str(out)]
    assert main([*argv, *TINY]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith(f"saved {out}: test top-1 ") and "27% of the teacher's MACs" in printed
    )
    assert slimkit.read_spec(out)["provenance"]["slim"]["init"] == "scratch"


def test_slim_bad_width(teacher: Path, tmp_path: Path, capsys) -> None:
    argv = ["slim", str(teacher), "--width", "0", "--out", str(tmp_path / "x.safetensors")]
    code, _, err = _run(argv, capsys)
    assert code == 2 and r"width must be in (0, 1]" in err


@pytest.mark.parametrize(
    ("flags", "method"),
    [([], "kd"), (["--recover", "ce"], "ce"), (["--finetune-epochs", "0"], "none")],
)
def test_prune_recovery(
    teacher: Path, tmp_path: Path, capsys, fmnist, flags: list[str], method: str
) -> None:
    out = tmp_path / "p.safetensors"
    argv = ["prune", str(teacher), "--sparsity", "0.5", "--finetune-epochs", "1", *flags]
    code, _, err = _run([*argv, "--out", str(out)], capsys)
    assert code == 0, err
    recover = slimkit.read_spec(out)["provenance"]["recover"]
    assert recover["method"] == method
    if method == "kd":
        assert recover == {"method": "kd", "teacher": "parent", "temperature": 4.0, "alpha": 0.9}


def test_structured_prune_recovers_with_kd(teacher: Path, tmp_path: Path, capsys, fmnist) -> None:
    out = tmp_path / "p.safetensors"
    argv = ["prune", str(teacher), "--method", "structured", "--ratio", "0.5"]
    code, _, err = _run([*argv, "--finetune-epochs", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert slimkit.read_spec(out)["provenance"]["recover"]["method"] == "kd"


def test_help_lists_the_new_commands() -> None:
    text = build_parser().format_help()
    assert "distill" in text and "slim" in text
