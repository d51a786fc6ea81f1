"""Quantization schemes as frozen, keyword-only value objects that round-trip to plain dicts.

Each config's dict starts with its ``scheme`` (its :attr:`~slimkit.ConfigBase.TAG`); the
registry :data:`~slimkit.quantize.SCHEMES` maps the name back to the config type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._config import ConfigBase, from_plain, to_plain
from ..train import TrainConfig
from ._scheme import SCHEMES, scheme_of

OBSERVERS = ("minmax", "percentile", "mse")
BACKENDS = ("onnxruntime", "torch")
REDUCE_RANGE = ("auto", "all", "none")


def _check_exclude(owner: str, exclude: object) -> None:
    if isinstance(exclude, str) or not isinstance(exclude, tuple):
        raise ValueError(
            f"{owner}.exclude must be a tuple of layer names or patterns, not {exclude!r}"
        )


def _check_positive(owner: str, name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}.{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Int8StaticConfig(ConfigBase):
    """Int8 post-training quantization of weights and activations, calibrated on data.

    Weights are symmetric int8 (per output channel by default); activations are per-tensor
    affine uint8 with ranges from an observer. BatchNorm is folded into the preceding conv first.

    Attributes:
        observer: how activation ranges are found: ``minmax``, ``percentile`` or ``mse``.
        per_channel: one weight scale per output channel (else one per tensor).
        exclude: module names or fnmatch patterns of Conv/Linear layers kept in float (mixed
            precision; :func:`~slimkit.quantize.sensitivity` ranks the candidates).
        calib_batches: batches of calibration data read.
        calib_batch_size: examples per calibration batch.
        percentile: the ``percentile`` observer's upper percentile (e.g. 99.99).
        reduce_range: 7-bit weights for ``"all"`` layers, ``"none"``, or (``"auto"``) the
            layers whose calibration inputs often use the upper half of the uint8 range: there
            x86 AVX2 u8s8 kernels (no VNNI) add two 8-bit products in int16 and can saturate.
    """

    TAG = ("scheme", "int8-static")

    observer: str = "minmax"
    per_channel: bool = True
    exclude: tuple[str, ...] = ()
    calib_batches: int = 8
    calib_batch_size: int = 64
    percentile: float = 99.99
    reduce_range: str = "auto"

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.observer not in OBSERVERS:
            raise ValueError(f"{name}.observer must be one of {OBSERVERS}, got {self.observer!r}")
        _check_exclude(name, self.exclude)
        _check_positive(name, "calib_batches", self.calib_batches)
        _check_positive(name, "calib_batch_size", self.calib_batch_size)
        if self.reduce_range not in REDUCE_RANGE:
            raise ValueError(
                f"{name}.reduce_range must be one of {REDUCE_RANGE}, got {self.reduce_range!r}"
            )
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"{name}.percentile must be in (50, 100], got {self.percentile}")


@dataclass(frozen=True, kw_only=True)
class QATConfig(Int8StaticConfig):
    """Quantization-aware training: int8-static numerics simulated during a short fine-tune.

    Weights are fake-quantized per channel with a straight-through estimator; activation ranges
    are calibrated first (as in :class:`Int8StaticConfig`) and kept fixed while weights adapt.

    Attributes:
        train: the fine-tuning run (a few epochs at a low learning rate; by default one
            epoch at 1e-4).
    """

    TAG = ("scheme", "qat")
    #: Layout 2 names the schedule ``train``; layout 1 wrote it as ``finetune``.
    VERSION = 2

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, lr=1e-4))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.train, TrainConfig):
            raise ValueError("QATConfig.train must be a slimkit.TrainConfig")

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Layout 1 → 2: ``finetune`` is ``train``."""
        if version != 1:
            return super().upgrade(data, version)
        values = dict(data)
        if "finetune" in values:
            if "train" in values:
                raise ValueError("QATConfig has both train and finetune, its old name: write train")
            values["train"] = values.pop("finetune")
        return values


@dataclass(frozen=True, kw_only=True)
class Int8DynamicConfig(ConfigBase):
    """Int8 weights with activations quantized on the fly per batch (Linear layers).

    Attributes:
        exclude: module names or patterns of Linear layers kept in float.
    """

    TAG = ("scheme", "int8-dynamic")

    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(type(self).__name__, self.exclude)


@dataclass(frozen=True, kw_only=True)
class Int8WeightOnlyConfig(ConfigBase):
    """Int8 per-channel weights for storage; compute stays in float.

    Attributes:
        exclude: module names or patterns of Conv/Linear layers kept in float.
    """

    TAG = ("scheme", "int8-weight-only")

    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(type(self).__name__, self.exclude)


@dataclass(frozen=True, kw_only=True)
class Int4WeightOnlyConfig(ConfigBase):
    """Int4 weights of Linear layers with one scale per group of input features.

    Attributes:
        group_size: input features sharing a scale (a power of two, e.g. 32 or 128).
        exclude: module names or patterns of Linear layers kept in float.
    """

    TAG = ("scheme", "int4-weight-only")

    group_size: int = 32
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_positive(name, "group_size", self.group_size)
        if self.group_size & (self.group_size - 1) or self.group_size < 2:
            raise ValueError(
                f"{name}.group_size must be a power of two >= 2 (32, 64, 128), got {self.group_size}"
            )
        _check_exclude(name, self.exclude)


@dataclass(frozen=True, kw_only=True)
class Fp16Config(ConfigBase):
    """Half-precision storage and compute (inputs are cast in, outputs cast back to float32)."""

    TAG = ("scheme", "fp16")


@dataclass(frozen=True, kw_only=True)
class Bf16Config(ConfigBase):
    """bfloat16 storage and compute (inputs are cast in, outputs cast back to float32)."""

    TAG = ("scheme", "bf16")


QuantConfig = (
    Int8StaticConfig
    | QATConfig
    | Int8DynamicConfig
    | Int8WeightOnlyConfig
    | Int4WeightOnlyConfig
    | Fp16Config
    | Bf16Config
)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The dict of a config of any registered scheme: ``scheme`` first, then its fields."""
    written = cfg.to_dict() if isinstance(cfg, ConfigBase) else to_plain(cfg)
    fields = {k: v for k, v in written.items() if k != "scheme"}
    return {"scheme": scheme_of(cfg), **fields}


def config_from_dict(data: Mapping[str, Any]) -> Any:
    """Rebuild a config of any registered scheme from its dict (:func:`config_to_dict`).

    Raises:
        ValueError: if the scheme or a key is unknown; the message lists the valid ones.
    """
    values = dict(data)
    name = values.pop("scheme", None)
    if not isinstance(name, str) or name not in SCHEMES:
        raise ValueError(SCHEMES.unknown_message(str(name)))
    cls = SCHEMES.get(name).config_type
    return cls.from_dict(values) if issubclass(cls, ConfigBase) else from_plain(cls, values)
