"""A plugin outside the package adds a group criterion and a quantization scheme, and both
work everywhere: the Python API, the CLI (in-process), and artifacts that load back."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

import slimkit
from slimkit.cli import build_parser, main
from slimkit.graph import DependencyGraph
from slimkit.importance import GROUP, MagnitudeGroupImportance
from slimkit.quantize import SCHEMES, config_from_dict, sqnr
from slimkit.testing import seeded_model

PLUGINS = Path(__file__).parent / "plugins"
PLUGIN = "slimkit_example_plugin"
DATA = ["--limit-train", "128", "--limit-eval", "64", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def plugin() -> Iterator[ModuleType]:
    """The plugin, imported as a user would; its registrations are undone afterwards."""
    sys.path.insert(0, str(PLUGINS))
    try:
        module = importlib.import_module(PLUGIN)
        yield module
    finally:
        sys.path.remove(str(PLUGINS))
        sys.modules.pop(PLUGIN, None)
        for registry, name in ((GROUP, "l1-normalized"), (SCHEMES, "int8-per-tensor")):
            if name in registry:
                registry.unregister(name)


def run(argv: list[str]) -> int:
    """``slimkit ARGV`` through the console script's entry point; its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return slimkit.save(seeded_model("seed-cnn"), tmp_path / "seed.safetensors")


# -- the importance criterion ------------------------------------------------------------------


def test_the_criterion_scores_each_group_in_proportion_to_l1_summing_to_one(
    plugin: ModuleType,
) -> None:
    model = seeded_model("seed-cnn")
    graph = DependencyGraph.build(model, torch.randn(1, 1, 28, 28))
    scores = plugin.L1NormalizedImportance()(graph, model)
    l1 = MagnitudeGroupImportance(p=1)(graph, model)
    assert len(scores) == len(graph.groups)
    prunable = [i for i, g in enumerate(graph.groups) if len(g.units)]
    assert len(prunable) == 3  # conv1, conv2, fc1 outputs; the classifier's are kept
    for got, reference, group in zip(scores, l1, graph.groups, strict=True):
        assert got.shape == (len(group.units),)
        if not len(group.units):
            continue
        assert float(got.sum()) == pytest.approx(1.0, abs=1e-12)
        torch.testing.assert_close(got, reference / reference.sum())


def test_prune_cli_takes_the_plugin_criterion_by_name(
    plugin: ModuleType, artifact: Path, tmp_path: Path
) -> None:
    """Normalising within a group keeps its ranking: the same channels go as with l1."""
    outs = {}
    for importance in ("l1-normalized", "l1"):
        out = tmp_path / f"{importance}.safetensors"
        argv = ["prune", str(artifact), "--method", "structured", "--ratio", "0.5"]
        argv += ["--importance", importance, "--finetune-epochs", "0", "--out", str(out)]
        assert run([*argv, *DATA]) == 0
        outs[importance] = out
    pruned, reference = slimkit.load(outs["l1-normalized"]), slimkit.load(outs["l1"])
    assert pruned.conv1.out_channels == 8 and pruned.conv2.out_channels == 16
    for name, tensor in reference.state_dict().items():
        assert torch.equal(pruned.state_dict()[name], tensor), name
    config = slimkit.read_spec(outs["l1-normalized"])["provenance"]["config"]
    assert config["importance"] == "l1-normalized" and config["method"] == "structured"


def test_a_name_registered_after_import_is_validated_when_the_config_is_built() -> None:
    with pytest.raises(ValueError, match="importance must be one of"):
        slimkit.StructuredConfig(ratio=0.5, importance="l1-late")
    GROUP.register("l1-late", lambda: MagnitudeGroupImportance(p=1))
    try:
        assert slimkit.StructuredConfig(ratio=0.5, importance="l1-late").importance == "l1-late"
        parser = build_parser()
        args = parser.parse_args(["prune", "a", "--importance", "l1-late", "--out", "b"])
        assert args.importance == "l1-late"
    finally:
        GROUP.unregister("l1-late")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prune", "a", "--importance", "l1-late", "--out", "b"])


def test_a_criterion_object_prunes_and_is_recorded_by_class_name(plugin: ModuleType) -> None:
    model = seeded_model("seed-cnn")
    example = torch.randn(1, 1, 28, 28)
    by_object = slimkit.StructuredConfig(ratio=0.5, importance=plugin.L1NormalizedImportance())
    pruned = slimkit.prune(model, by_object, example_inputs=example)
    reference = slimkit.prune(
        model, slimkit.StructuredConfig(ratio=0.5, importance="l1"), example_inputs=example
    )
    for name, tensor in reference.state_dict().items():
        assert torch.equal(pruned.state_dict()[name], tensor), name
    record = {"class": f"{PLUGIN}.L1NormalizedImportance", "name": "l1-normalized"}
    assert by_object.to_dict()["importance"] == record
    assert pruned.slimkit_prune_report["config"]["importance"] == record
    json.dumps(by_object.to_dict())  # provenance stays plain JSON
    with pytest.raises(ValueError, match=r"importance held a .*L1NormalizedImportance object"):
        slimkit.StructuredConfig.from_dict(by_object.to_dict())


def test_an_object_that_is_no_criterion_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"importance must be a name in .* or a criterion object \(GroupImportance"
    ):
        slimkit.StructuredConfig(ratio=0.5, importance=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"criterion object \(ElementwiseImportance"):
        slimkit.UnstructuredConfig(sparsity=0.5, importance=object())  # type: ignore[arg-type]


# -- the quantization scheme -------------------------------------------------------------------


def test_the_scheme_is_a_config_dict_and_a_cli_choice(plugin: ModuleType) -> None:
    cfg = config_from_dict({"scheme": "int8-per-tensor", "exclude": ["fc2"]})
    assert cfg == plugin.Int8PerTensorConfig(exclude=("fc2",))
    assert cfg.to_dict() == {"scheme": "int8-per-tensor", "exclude": ["fc2"]}
    args = build_parser().parse_args(["quantize", "a", "--scheme", "int8-per-tensor"])
    assert args.scheme == "int8-per-tensor"
    with pytest.raises(ValueError, match=r"did you mean 'int8-per-tensor'"):
        config_from_dict({"scheme": "int8-per-tensr"})


def test_quantize_cli_writes_an_artifact_that_loads_to_the_same_numbers(
    plugin: ModuleType, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.safetensors"
    argv = ["quantize", str(artifact), "--scheme", "int8-per-tensor", "--exclude", "fc2"]
    assert run([*argv, "--out", str(out), "--json", *DATA]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "torch" and result["size_ratio"] > 2.5

    float_model = slimkit.load(artifact)
    loaded = slimkit.load(out)
    section = slimkit.read_spec(out)["quantization"]
    assert section["scheme"] == "int8-per-tensor"
    assert section["config"] == {"scheme": "int8-per-tensor", "exclude": ["fc2"]}
    for name in ("conv1", "conv2", "fc1"):
        layer, w = loaded.get_submodule(name), float_model.get_submodule(name).weight.detach()
        assert layer.weight.dtype == torch.int8
        s = w.abs().max() / 127
        assert torch.equal(layer.scale, s)
        assert torch.equal(layer.dequantized(), torch.round(w / s) * s)
        assert int(layer.weight.abs().max()) == 127
    assert isinstance(loaded.fc2, torch.nn.Linear)  # --exclude reached the plugin's config
    assert torch.equal(loaded.fc2.weight, float_model.fc2.weight)

    # The same outputs as the quantized model before saving, and close to float.
    before = slimkit.quantize(
        float_model, plugin.Int8PerTensorConfig(exclude=("fc2",)), backend="torch"
    )
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        expected, got, reference = before(x), loaded(x), float_model(x)
    assert torch.equal(got, expected)
    assert sqnr(reference, got) > 30.0
