"""Quantization schemes as frozen, keyword-only value objects that round-trip to plain dicts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..train import TrainConfig

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
class Int8StaticConfig:
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

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": "int8-static", **_plain(self)}


@dataclass(frozen=True, kw_only=True)
class QATConfig(Int8StaticConfig):
    """Quantization-aware training: int8-static numerics simulated during a short fine-tune.

    Weights are fake-quantized per channel with a straight-through estimator; activation ranges
    are calibrated first (as in :class:`Int8StaticConfig`) and kept fixed while weights adapt.

    Attributes:
        finetune: the fine-tuning run (a few epochs at a low learning rate).
    """

    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, lr=1e-4))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.finetune, TrainConfig):
            raise ValueError("QATConfig.finetune must be a slimkit.TrainConfig")

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": "qat", **_plain(self), "finetune": self.finetune.to_dict()}


@dataclass(frozen=True, kw_only=True)
class Int8DynamicConfig:
    """Int8 weights with activations quantized on the fly per batch (Linear layers).

    Attributes:
        exclude: module names or patterns of Linear layers kept in float.
    """

    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(type(self).__name__, self.exclude)

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": "int8-dynamic", **_plain(self)}


@dataclass(frozen=True, kw_only=True)
class Int8WeightOnlyConfig:
    """Int8 per-channel weights for storage; compute stays in float.

    Attributes:
        exclude: module names or patterns of Conv/Linear layers kept in float.
    """

    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(type(self).__name__, self.exclude)

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": "int8-weight-only", **_plain(self)}


@dataclass(frozen=True, kw_only=True)
class Int4WeightOnlyConfig:
    """Int4 weights of Linear layers with one scale per group of input features.

    Attributes:
        group_size: input features sharing a scale (a power of two, e.g. 32 or 128).
        exclude: module names or patterns of Linear layers kept in float.
    """

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

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": "int4-weight-only", **_plain(self)}


@dataclass(frozen=True, kw_only=True)
class Fp16Config:
    """Half-precision storage and compute (inputs are cast in, outputs cast back to float32)."""

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": "fp16"}


@dataclass(frozen=True, kw_only=True)
class Bf16Config:
    """bfloat16 storage and compute (inputs are cast in, outputs cast back to float32)."""

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": "bf16"}


QuantConfig = (
    Int8StaticConfig
    | QATConfig
    | Int8DynamicConfig
    | Int8WeightOnlyConfig
    | Int4WeightOnlyConfig
    | Fp16Config
    | Bf16Config
)

SCHEMES: dict[str, type] = {
    "int8-static": Int8StaticConfig,
    "qat": QATConfig,
    "int8-dynamic": Int8DynamicConfig,
    "int8-weight-only": Int8WeightOnlyConfig,
    "int4-weight-only": Int4WeightOnlyConfig,
    "fp16": Fp16Config,
    "bf16": Bf16Config,
}


def _plain(cfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_dict(data: dict[str, Any]) -> Any:
    """Rebuild a config from :meth:`to_dict` output.

    Raises:
        ValueError: if the scheme or a key is unknown; the message lists the valid ones.
    """
    data = dict(data)
    scheme = data.pop("scheme", None)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    cls = SCHEMES[scheme]
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(f"unknown keys {unknown} for {cls.__name__}; valid: {sorted(valid)}")
    if "exclude" in data:
        data["exclude"] = tuple(data["exclude"])
    if "finetune" in data:
        data["finetune"] = TrainConfig(**data["finetune"])
    return cls(**data)


def scheme_of(cfg: Any) -> str:
    """The scheme name of a config (``int8-static``, ``qat``, ...)."""
    return str(cfg.to_dict()["scheme"])
