"""ConfigBase: one generic to/from dict for every config, keeping the layout artifacts hold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

import slimkit
from slimkit import ConfigBase
from slimkit._config import from_plain, nest, to_plain
from slimkit.distill import DistillConfig
from slimkit.prune import AGP, Global, OneShot, PerLayer, StructuredConfig, UnstructuredConfig
from slimkit.quantize import Int4WeightOnlyConfig, QATConfig, config_from_dict
from slimkit.text import EmbeddingDistillConfig, EncoderPruneConfig
from slimkit.train import TrainConfig, TrainRecipe


@dataclass(frozen=True)
class Step(ConfigBase):
    TAG = ("kind", "step")
    size: int = 1


@dataclass(frozen=True)
class Ramp(ConfigBase):
    TAG = ("kind", "ramp")
    start: float = 0.0
    stop: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Outer(ConfigBase):
    TAG = ("method", "outer")
    name: str
    shape: Step | Ramp = field(default_factory=Step)
    layers: tuple[str, ...] = ()
    pairs: tuple[tuple[str, int], ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    limit: int | None = None


def test_to_dict_writes_the_tag_first_then_every_field_as_plain_data() -> None:
    cfg = Outer(
        name="a",
        shape=Ramp(stop=0.5),
        layers=("x", "y"),
        pairs=(("p", 1),),
        weights={"w": 0.25},
        train=TrainConfig(epochs=2),
    )
    data = cfg.to_dict()
    assert list(data) == ["method", "name", "shape", "layers", "pairs", "weights", "train", "limit"]
    assert data["method"] == "outer"
    assert data["shape"] == {"kind": "ramp", "start": 0.0, "stop": 0.5}
    assert data["layers"] == ["x", "y"] and data["pairs"] == [["p", 1]]
    assert data["weights"] == {"w": 0.25} and data["limit"] is None
    assert data["train"] == {**TrainConfig().to_dict(), "epochs": 2}
    back = Outer.from_dict(data)
    assert back == cfg and back.pairs == (("p", 1),) and isinstance(back.shape, Ramp)


def test_from_dict_picks_the_union_member_by_its_tag_and_the_tag_may_be_left_out() -> None:
    assert Outer.from_dict({"name": "a", "shape": {"kind": "step", "size": 3}}).shape == Step(3)
    with pytest.raises(ValueError, match=r"Outer.shape kind must be one of \['ramp', 'step'\]"):
        Outer.from_dict({"name": "a", "shape": {"kind": "spline"}})
    with pytest.raises(ValueError, match=r"Outer has method 'outer', not 'inner'"):
        Outer.from_dict({"method": "inner", "name": "a"})


def test_unknown_missing_and_misshapen_keys_are_errors_that_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['nmae'\] for Outer; valid: \['layers'"):
        Outer.from_dict({"nmae": "a"})
    with pytest.raises(ValueError, match=r"Outer needs \['name'\]"):
        Outer.from_dict({})
    with pytest.raises(ValueError, match=r"Outer.train is a mapping of TrainConfig fields"):
        Outer.from_dict({"name": "a", "train": 3})
    with pytest.raises(ValueError, match=r"unknown keys \['epoch'\] for TrainConfig"):
        Outer.from_dict({"name": "a", "train": {"epoch": 3}})
    with pytest.raises(ValueError, match="is written as a mapping of its fields"):
        Outer.from_dict(["name"])  # type: ignore[arg-type]


class Criterion:
    name = "mine"


def test_an_object_is_recorded_by_class_and_never_rebuilt() -> None:
    @dataclass(frozen=True)
    class Holder(ConfigBase):
        thing: Any = None

    data = Holder(Criterion()).to_dict()
    assert data == {"thing": {"class": f"{__name__}.Criterion", "name": "mine"}}
    with pytest.raises(ValueError, match=r"Holder.thing held a .*Criterion object"):
        Holder.from_dict(data)


def test_plain_dataclasses_work_through_the_functions() -> None:
    @dataclass(frozen=True)
    class Plain:
        sizes: tuple[int, ...] = (1,)

    assert to_plain(Plain((2, 3))) == {"sizes": [2, 3]}
    assert from_plain(Plain, {"sizes": [2, 3]}) == Plain((2, 3))
    with pytest.raises(TypeError):
        from_plain(dict, {})


# Dicts exactly as the hand-written to_dict methods of slimkit 0.x wrote them into artifacts,
# provenance and reports: they must keep loading, and configs must keep writing them.
WRITTEN_BEFORE: list[tuple[Any, dict[str, Any]]] = [
    (
        UnstructuredConfig(sparsity=0.5, scope=PerLayer({"fc": 0.1}), schedule=AGP(steps=2)),
        {
            "method": "unstructured",
            "sparsity": 0.5,
            "importance": "magnitude",
            "scope": {"type": "per-layer", "overrides": {"fc": 0.1}},
            "exclude": [],
            "schedule": {"type": "agp", "steps": 2, "initial_sparsity": 0.0},
            "calib_batches": 16,
        },
    ),
    (
        StructuredConfig(target_macs=0.5, round_to=8, ignore=("fc1",), scope=Global()),
        {
            "method": "structured",
            "ratio": None,
            "target_macs": 0.5,
            "target_latency": None,
            "importance": "l2",
            "scope": {"type": "global"},
            "round_to": 8,
            "ignore": ["fc1"],
            "schedule": {"type": "one-shot"},
            "max_ratio": 0.9,
            "calib_batches": 4,
            "latency_tolerance": 0.1,
            "latency_threads": None,
            "remove_blocks": [],
        },
    ),
    (
        DistillConfig(hint_layers=(("conv1", "layer1"),), train=TrainConfig(epochs=2)),
        {
            "temperature": 4.0,
            "alpha": 0.9,
            "logit_loss": "kd",
            "beta": 8.0,
            "hint_layers": [["conv1", "layer1"]],
            "hint_weight": 1.0,
            "attention_weight": 0.0,
            "train": {**TrainConfig().to_dict(), "epochs": 2},
            "cache_teacher": True,
            "teacher_runtime": "auto",
        },
    ),
    (
        TrainRecipe(model="seed-cnn", out="m.safetensors"),
        {
            "model": "seed-cnn",
            "out": "m.safetensors",
            "data": "fashion-mnist",
            "train": TrainConfig().to_dict(),
            "model_args": {},
        },
    ),
    (
        EncoderPruneConfig(heads=0.25, scope=PerLayer({"encoder.layer.0.*": 0.1})),
        {
            "method": "encoder-heads-ffn",
            "heads": 0.25,
            "ffn": 0.5,
            "layers": 0.0,
            "importance": "fisher",
            "scope": {"type": "per-layer", "overrides": {"encoder.layer.0.*": 0.1}},
            "round_to": 1,
            "max_ratio": 0.9,
            "calib_texts": 256,
            "max_length": 128,
        },
    ),
]


@pytest.mark.parametrize(("cfg", "data"), WRITTEN_BEFORE, ids=lambda v: type(v).__name__)
def test_configs_write_and_read_the_layout_they_wrote_before(
    cfg: ConfigBase, data: dict[str, Any]
) -> None:
    assert cfg.to_dict() == data
    assert type(cfg).from_dict(data) == cfg


def test_an_encoder_prune_config_written_before_layer_dropping_reads() -> None:
    old = {"method": "encoder-heads-ffn", "heads": 0.25, "ffn": 0.5}
    assert EncoderPruneConfig.from_dict(old) == EncoderPruneConfig(heads=0.25, ffn=0.5, layers=0.0)


def test_a_recipe_written_before_model_args_reads() -> None:
    old = {"model": "seed-cnn", "out": "m.safetensors", "data": "fashion-mnist"}
    assert TrainRecipe.from_dict(old) == TrainRecipe(model="seed-cnn", out="m.safetensors")


def test_quantization_configs_keep_their_scheme_layout() -> None:
    qat = QATConfig(exclude=("fc2",), train=TrainConfig(epochs=2, lr=1e-4))
    written = {
        "scheme": "qat",
        "version": 2,
        "observer": "minmax",
        "per_channel": True,
        "exclude": ["fc2"],
        "calib_batches": 8,
        "calib_batch_size": 64,
        "percentile": 99.99,
        "reduce_range": "auto",
        "train": {**TrainConfig().to_dict(), "epochs": 2, "lr": 1e-4},
    }
    assert qat.to_dict() == written and config_from_dict(written) == qat
    int4 = {"scheme": "int4-weight-only", "group_size": 64, "exclude": []}
    assert config_from_dict(int4) == Int4WeightOnlyConfig(group_size=64)
    with pytest.raises(ValueError, match=r"Int4WeightOnlyConfig has scheme 'int4-weight-only'"):
        Int4WeightOnlyConfig.from_dict({"scheme": "fp16"})


# Dicts of a layout a config has since changed, as artifacts, run directories and reports
# already hold them: each still loads as the config it described (#20, one spelling of a
# training schedule), and the config now writes its new layout with its version.
OLDER_LAYOUTS: list[tuple[Any, dict[str, Any]]] = [
    (
        QATConfig(exclude=("fc2",), train=TrainConfig(epochs=2, lr=1e-4)),
        {
            "scheme": "qat",
            "observer": "minmax",
            "per_channel": True,
            "exclude": ["fc2"],
            "calib_batches": 8,
            "calib_batch_size": 64,
            "percentile": 99.99,
            "reduce_range": "auto",
            "finetune": {**TrainConfig().to_dict(), "epochs": 2, "lr": 1e-4},
        },
    ),
    (
        EmbeddingDistillConfig(hidden_weight=1.0),
        {
            "method": "embedding-kd",
            "epochs": 1,
            "batch_size": 32,
            "lr": 1e-4,
            "max_length": 128,
            "cosine_weight": 1.0,
            "mse_weight": 0.0,
            "hidden_weight": 1.0,
            "freeze_embeddings": False,
            "seed": 0,
        },
    ),
]


@pytest.mark.parametrize(("cfg", "old"), OLDER_LAYOUTS, ids=lambda v: type(v).__name__)
def test_configs_read_the_layout_before_their_schedule_was_a_train_config(
    cfg: ConfigBase, old: dict[str, Any]
) -> None:
    assert type(cfg).from_dict(old) == cfg
    written = cfg.to_dict()
    assert written["version"] == type(cfg).VERSION == 2
    assert isinstance(written["train"], dict) and type(cfg).from_dict(written) == cfg


@dataclass(frozen=True, kw_only=True)
class Renamed(ConfigBase):
    """Layout 1 wrote ``epochs`` flat; layout 2 keeps it in ``train``."""

    VERSION = 2
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=0.5))
    name: str = "r"

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        return nest(cls.__name__, data, "train", {"epochs": "epochs"})


def test_versions_are_written_checked_and_upgraded_in_place() -> None:
    assert list(Renamed().to_dict())[:2] == ["version", "train"]
    assert Renamed.from_dict({"epochs": 7}) == Renamed(train=TrainConfig(epochs=7, lr=0.5))
    # A dict of this layout without its version reads too: upgrading moves nothing.
    assert Renamed.from_dict({"train": {"epochs": 7}}).train.lr == 0.5
    assert Renamed.upgraded({"epochs": 7, "other": 1}) == {
        "other": 1,
        "train": TrainConfig(epochs=7, lr=0.5).to_dict(),
        "version": 2,
    }
    with pytest.raises(ValueError, match=r"Renamed of layout 3 was written by a newer slimkit"):
        Renamed.from_dict({"version": 3})
    with pytest.raises(ValueError, match=r"Renamed.version must be an integer >= 1, got '2'"):
        Renamed.from_dict({"version": "2"})
    with pytest.raises(ValueError, match=r"Outer has no layout 1 to read"):
        Outer.upgrade({}, 1)


def test_a_nested_config_written_in_part_is_completed_from_the_fields_default() -> None:
    # Not from TrainConfig's own defaults (epochs 10, lr 1e-3): a recipe that changes one
    # setting of a schedule keeps the others.
    assert Renamed.from_dict({"train": {"lr": 0.1}}).train == TrainConfig(epochs=5, lr=0.1)
    qat = QATConfig.from_dict({"train": {"epochs": 3}})
    assert qat.train == TrainConfig(epochs=3, lr=1e-4)


def test_every_public_config_is_on_the_base() -> None:
    configs = [
        Global,
        PerLayer,
        OneShot,
        AGP,
        UnstructuredConfig,
        StructuredConfig,
        TrainConfig,
        TrainRecipe,
        DistillConfig,
        EncoderPruneConfig,
        EmbeddingDistillConfig,
        slimkit.Int8StaticConfig,
        QATConfig,
    ]
    assert all(issubclass(c, ConfigBase) for c in configs)
    # No hand-written pairs are left; TrainRecipe.from_dict only adds the file to errors.
    overriding = [c.__name__ for c in configs if {"to_dict", "from_dict"} & set(vars(c))]
    assert overriding == ["TrainRecipe"]
