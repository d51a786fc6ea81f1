"""``--model-arg KEY=VALUE`` and a recipe's ``model_args:`` on the commands that build a model
by name: train, graph and distill (in-process, tiny data)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import slimkit
from slimkit.cli._main import main
from slimkit.testing import seeded_model

TINY = ["--limit-train", "200", "--limit-eval", "100", "--device", "cpu"]
needs_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="needs timm")
RECIPE = """\
model: timm:vit_tiny_patch16_224
model_args:
  patch_size: 4
  depth: 2
  embed_dim: 48
  num_heads: 3
out: {out}
train:
  epochs: 1
  batch_size: 64
"""


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main([*argv, *TINY])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 and "--json" in argv else {}, captured.err


@needs_timm
def test_train_builds_the_recipes_model_args_with_the_flags_over_them(
    tmp_path: Path, capsys, fmnist
) -> None:
    recipe, out = tmp_path / "vit.yaml", tmp_path / "vit.safetensors"
    recipe.write_text(RECIPE.format(out=out))
    flags = ["--model-arg", "depth=1", "--model-arg", "global_pool=avg"]  # JSON 1, string avg
    code, _, err = _run(["train", "--recipe", str(recipe), *flags, "--json"], capsys)
    assert code == 0, err
    args = {"patch_size": 4, "depth": 1, "embed_dim": 48, "num_heads": 3, "global_pool": "avg"}
    assert slimkit.read_spec(out)["arch"]["kwargs"]["model_args"] == args
    vit = slimkit.load(out).model
    assert len(vit.blocks) == 1 and vit.global_pool == "avg" and vit.embed_dim == 48


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("depth", "argument --model-arg: expected KEY=VALUE, got 'depth'"),
        ("=4", "argument --model-arg: expected KEY=VALUE, got '=4'"),
    ],
)
def test_a_model_arg_without_key_and_value_is_a_usage_error(
    tmp_path: Path, capsys, flag: str, message: str
) -> None:
    argv = ["train", "--model", "seed-cnn", "--model-arg", flag, "--out", str(tmp_path / "m")]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_model_args_slimkit_sets_itself_are_refused_before_reading_data(
    tmp_path: Path, capsys
) -> None:
    argv = ["train", "--model", "seed-cnn", "--model-arg", "num_classes=3"]
    code, _, err = _run([*argv, "--out", str(tmp_path / "m.safetensors")], capsys)
    assert code == 2 and "model_args cannot set 'num_classes'" in err


def test_a_model_arg_its_model_refuses_is_one_line_naming_it(
    tmp_path: Path, capsys, fmnist
) -> None:
    argv = ["train", "--model", "seed-cnn", "--model-arg", "width=3"]
    code, _, err = _run([*argv, "--out", str(tmp_path / "m.safetensors")], capsys)
    assert code == 1
    assert err.splitlines() == [
        "slimkit: error: model 'seed-cnn' rejected model_args 'width'=3: TypeError: seed_cnn() "
        "got an unexpected keyword argument 'width'"
    ]


def test_graph_builds_a_model_with_model_args(capsys) -> None:
    units = {}
    for width in ("0.5", "1.0"):
        argv = ["graph", "torchvision:mobilenet_v2", "--model-arg", f"width_mult={width}"]
        assert main([*argv, "--json"]) == 0
        units[width] = sum(g["units"] for g in json.loads(capsys.readouterr().out)["groups"])
    assert units["0.5"] < units["1.0"]


def test_an_artifact_refuses_model_args(tmp_path: Path, capsys) -> None:
    artifact = slimkit.save(seeded_model("seed-cnn"), tmp_path / "t.safetensors")
    code = main(["graph", str(artifact), "--model-arg", "width=3"])
    err = capsys.readouterr().err
    assert code == 2 and "--model-arg applies to a model built by name, but MODEL" in err
    argv = ["distill", "--teacher", str(artifact), "--student", str(artifact)]
    code, _, err = _run([*argv, "--model-arg", "width=3", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "but --student names an artifact" in err


def test_distill_builds_its_student_with_model_args(tmp_path: Path, capsys, fmnist) -> None:
    teacher = slimkit.save(seeded_model("seed-cnn"), tmp_path / "t.safetensors")
    argv = ["distill", "--teacher", str(teacher), "--student", "seed-cnn-slim"]
    code, _, err = _run([*argv, "--model-arg", "width=3", "--out", str(tmp_path / "s")], capsys)
    assert code == 1 and "model 'seed-cnn-slim' rejected model_args 'width'=3" in err
