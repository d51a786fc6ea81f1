"""The compress configuration: an accuracy budget, a goal and the search's knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._checks import check_bool, check_int, check_number, check_str
from .._config import ConfigBase, nest
from ..importance import GROUP, GroupImportance, check_importance
from ..measure import Budget
from ..runtime import RUNTIMES, available_runtimes, channel_multiple
from ..train import TrainConfig


def check_runtimes(cfg: CompressConfig) -> None:
    """Raise a one-line error when ``cfg`` needs a runtime that is not installed here."""
    from ..errors import MissingDependencyError

    if not cfg.int8:
        return
    if cfg.backend == "auto" and not available_runtimes():
        raise MissingDependencyError(
            "backend 'auto' found no runtime: pip install 'slimkit[onnx]' (ONNX Runtime) or "
            "'slimkit[openvino]', or use --backend torch"
        )
    if cfg.backend != "auto" and not RUNTIMES.get(cfg.backend).available():
        extra = RUNTIMES.get(cfg.backend).extra
        raise MissingDependencyError(
            f"backend {cfg.backend!r} is not installed: pip install 'slimkit[{extra}]'"
        )


def backends() -> tuple[str, ...]:
    """The ``backend`` choices: ``auto``, every registered runtime, and ``torch`` (eager)."""
    return ("auto", *RUNTIMES.names(), "torch")


GOALS = ("latency", "size", "macs")
RECOVERY = ("auto", "kd", "ce")
COSTS = ("macs", "params", "latency")
#: Integer fields and their minimum (None: any integer); ``_OPTIONAL`` ones may be None too.
_INTS = {
    "trials": 1,
    "seed": None,
    "polish_epochs": 0,
    "polish_trials": 1,
    "sensitivity_images": 1,
    "latency_threads": 1,
    "round_to": 1,
    "min_channels": 1,
}
#: Real-valued fields and their minimum; ranges beyond that are checked one by one.
_NUMBERS = {
    "max_drop": 0.0,
    "time_budget_s": None,
    "min_macs_keep": None,
    "max_macs_keep": None,
    "max_sparsity": None,
    "margin_se": 0.0,
}
_POSITIVE = ("time_budget_s",)
_OPTIONAL = ("latency_threads", "round_to", "min_channels", "time_budget_s")
_BOOLS = ("quantize", "remove_blocks", "lower_is_better")
_STRINGS = ("goal", "backend", "recover")
#: The training schedules: ``recover_train`` after each trial's pruning, ``qat_train`` when
#: int8 misses the budget.
SCHEDULES = ("recover_train", "qat_train")


@dataclass(frozen=True, kw_only=True)
class CompressConfig(ConfigBase):
    """What ``compress`` must achieve, and how hard it may search.

    Args:
        max_drop: the accuracy budget, in points of validation top-1 below the original (in
            units of ``metric`` when one is given).
        goal: what to minimise within the budget: ``latency`` (batch-64 latency on
            ``backend``), ``size`` (bytes of the artifact) or ``macs``.
        backend: where the result runs: ``auto`` (every installed runtime is timed on every
            candidate, fp32 and int8 graphs alike, and the fastest within the budget is
            deployed), a runtime of :data:`slimkit.runtime.RUNTIMES` (``onnxruntime``,
            ``openvino``: the same QDQ int8 or fp32 ONNX graph), or ``torch`` (eager; no int8
            there, so only pruning helps).
        trials: how many candidate plans the search evaluates (each one pruned, recovered,
            quantized and validated).
        time_budget_s: stop starting new trials after this many seconds of search.
        seed: seeds the sampler and every trial's training, so a run is repeatable (the
            schedules' own ``seed`` stays 0: each trial seeds its training from this one).
        importance: the structured pruning criterion: a name in
            :data:`slimkit.importance.GROUP` or a :class:`~slimkit.importance.GroupImportance`
            object (see ``StructuredConfig``). An object is recorded by class name in
            :meth:`to_dict`: a run resumed or joined by a worker needs a registered name.
        recover: how trials recover a pruned model: ``kd`` (distil from the original),
            ``ce`` (plain fine-tuning), or ``auto``: recover one pruned candidate both ways
            first and use KD only if it scores better (the recovery stage).
        recover_train: the recovery after structured pruning in each trial (and the fine-tuning
            after its unstructured sparsity, for at least one epoch): by default 2 epochs of
            Adam at 1e-3 (``TrainConfig(epochs=2)``).
        sensitivity_ratios: pruning ratios probed per channel group in the sensitivity stage.
        sensitivity_images: validation images read per sensitivity probe.
        min_macs_keep: the smallest fraction of the structured cost (``structure_cost``) the
            search may keep.
        max_macs_keep: the largest (1.0 lets the search skip structured pruning).
        structure_cost: what the structured plan cuts a fraction of: ``macs``, ``params``, or
            ``latency`` (the predicted time of the int8 graph on the runtime that runs it
            fastest: every probed channel cut is exported and profiled layer by layer there,
            and a removed block saves its layers' measured time; needs ``quantize`` and a
            runtime backend). ``None`` (default): parameters for the size goal, MACs
            otherwise. With ``params`` the plan cuts what saves the most weights per point of
            predicted drop (resnet56's layer3 blocks hold 16x the weights of its layer1
            blocks, for the same MACs); with ``latency``, what saves the most milliseconds at
            batch 64 (resnet20's layer1 blocks have the MACs of its layer3 blocks but take
            twice their time on int8): on resnet20 it found a plan 1.5x faster than the MAC
            plan at the same budget. It is not the default because it prices batch 64 only:
            on seed-cnn, whose batch-1 time is the weights of its large linear layer, it kept
            the model whole where the MAC plan cut it to 71% and ran faster at batch 1.
            With ``macs`` every group is cut to a common predicted drop.
        max_sparsity: the largest unstructured sparsity the search may try (size goal only).
        quantize: quantize to int8 (static, calibrated) when the backend runs int8.
        qat_train: when post-training quantization misses the budget, fine-tune with
            quantization-aware training on this schedule (0 epochs disable it): by default
            one epoch at 1e-4, a tenth of the recovery's rate.
        latency_threads: CPU threads for latency measurements (None: torch's current setting).
        polish_epochs: after the search, recover the best plan within budget and the next
            deeper ones again, for ``recover_train.epochs + polish_epochs`` epochs from the
            original, and keep whichever is best within budget (0: off). Trials recover
            briefly to rank plans; the result deserves the longer schedule.
        polish_trials: how many plans the polish stage recovers again: the best one within
            budget and up to ``polish_trials - 1`` better on the goal that missed the budget
            by less than the budget itself.
        margin_se: the verify stage counts a candidate within budget only if its validation
            drop plus this many standard errors of that drop (paired, per example) stays within
            ``max_drop``: the search keeps the best of several noisy estimates, which flatters
            it. 1.0 by default; 0 takes the measured drop at face value.
        remove_blocks: let the plan remove whole residual blocks too (depth pruning), where
            the model has them (``slimkit.graph.removable_blocks``). On int8 ONNX Runtime a
            narrower conv runs at a lower MAC rate while a removed block costs nothing:
            resnet56 at batch 64 on one AVX2 core, its 12 least sensitive blocks removed
            (55% of the MACs kept) ran 1.79x faster than the unpruned int8 graph, channel
            pruning to the same MACs 1.16x (``benchmarks/depth.py``).
        min_channels: the plan keeps at least this many channels in every group. ``None``
            (default): 16 for the latency goal on int8 ONNX Runtime, 1 otherwise. Its x86
            int8 convolutions run fewer MACs per second on narrow layers: in resnet56 pruned
            for int8 (batch 64, one thread), a 16→8 conv took 3.1 ms where the unpruned
            16→16 conv, with twice the MACs, took 2.05 ms.
        metric: the number the budget is stated in, ``metric(model, dataset) -> float``
            (higher is better unless ``lower_is_better``), or its ``package.module:function``
            name. ``None``: top-1 accuracy in percent. The baseline, the sensitivity curves,
            the search, the int8 fallbacks, verify and the report all score with it; verify
            then adds no standard-error margin (it needs per-example top-1 hits).
        lower_is_better: ``metric`` is a loss or an error rate.
        round_to: keep channel counts multiples of this. ``None`` (default): 1 unless the
            goal is latency; for latency, the multiple that the kernels of the runtimes it
            deploys on want (each runtime declares its own, for int8 and float graphs:
            :class:`slimkit.runtime.ChannelMultiples`), the largest of them for ``auto``, 8 for
            eager PyTorch. On an AVX-512 VNNI CPU at resnet20's shapes, batch 64
            (``benchmarks/channel_multiples.py``): int8 on ONNX Runtime and OpenVINO, 8 (a
            width that is no multiple of 4 ran 1.3x slower than the next multiple of 4 on ONNX
            Runtime; the next multiple of 8 cost 3-4% more than one of 4); fp32 on ONNX
            Runtime, 16 (its blocks of 16 channels: a width between two multiples costs what
            the next one does); fp32 on OpenVINO, 4.
    """

    max_drop: float = 0.5
    goal: str = "latency"
    backend: str = "auto"
    trials: int = 8
    time_budget_s: float | None = None
    seed: int = 0
    importance: str | GroupImportance = "l2"
    recover: str = "auto"
    recover_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, lr=1e-3))
    sensitivity_ratios: tuple[float, ...] = (0.3, 0.6)
    sensitivity_images: int = 2000
    min_macs_keep: float = 0.1
    max_macs_keep: float = 1.0
    max_sparsity: float = 0.95
    quantize: bool = True
    qat_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, lr=1e-4))
    latency_threads: int | None = None
    round_to: int | None = None
    min_channels: int | None = None
    polish_epochs: int = 0
    polish_trials: int = 2
    margin_se: float = 1.0
    remove_blocks: bool = True
    structure_cost: str | None = None
    metric: Any = None
    lower_is_better: bool = False

    #: Layout 2 holds each training schedule in a :class:`TrainConfig` (``recover_train``,
    #: ``qat_train``); layout 1 wrote ``recover_epochs``, ``recover_lr`` and ``qat_epochs``.
    VERSION = 2

    def __post_init__(self) -> None:
        self._check_kinds()
        self._check_schedules()
        check_importance("CompressConfig", self.importance, GROUP, GroupImportance)
        named = isinstance(self.metric, str) and ":" in self.metric.strip(":")
        if self.metric is not None and not callable(self.metric) and not named:
            raise ValueError(
                f"CompressConfig.metric must be a callable or 'package.module:function', got "
                f"{self.metric!r}"
            )
        if self.lower_is_better and self.metric is None:
            raise ValueError(
                "CompressConfig.lower_is_better needs a metric (top-1 is higher-is-better)"
            )
        for name, value, allowed in (
            ("goal", self.goal, GOALS),
            ("backend", self.backend, backends()),
            ("recover", self.recover, RECOVERY),
        ):
            if value not in allowed:
                raise ValueError(f"CompressConfig.{name} must be one of {allowed}, got {value!r}")
        if not 0.0 < self.min_macs_keep <= 1.0:
            raise ValueError(
                f"CompressConfig.min_macs_keep must be in (0, 1], got {self.min_macs_keep}"
            )
        if not self.min_macs_keep <= self.max_macs_keep <= 1.0:
            raise ValueError(
                "CompressConfig.max_macs_keep must be in [min_macs_keep, 1], "
                f"got {self.max_macs_keep}"
            )
        if not 0.0 <= self.max_sparsity < 1.0:
            raise ValueError(
                f"CompressConfig.max_sparsity must be in [0, 1), got {self.max_sparsity}"
            )
        if not self.sensitivity_ratios or not all(0 < r < 1 for r in self.sensitivity_ratios):
            raise ValueError("CompressConfig.sensitivity_ratios must be values in (0, 1)")
        if self.structure_cost is not None and self.structure_cost not in COSTS:
            raise ValueError(
                f"CompressConfig.structure_cost must be one of {COSTS} (or None), "
                f"got {self.structure_cost!r}"
            )
        if self.structure_cost == "latency" and not self.int8:
            raise ValueError(
                "CompressConfig.structure_cost='latency' times the layers of the int8 graph on "
                "its runtime: it needs a runtime backend (not 'torch') and quantize=True; "
                "use 'macs' otherwise"
            )

    def _check_kinds(self) -> None:
        """Every field has its kind and a finite value, before any comparison reads it."""
        for name, minimum in _INTS.items():
            if not (name in _OPTIONAL and getattr(self, name) is None):
                check_int(f"CompressConfig.{name}", getattr(self, name), minimum=minimum)
        for name, low in _NUMBERS.items():
            if not (name in _OPTIONAL and getattr(self, name) is None):
                check_number(
                    f"CompressConfig.{name}",
                    getattr(self, name),
                    minimum=low,
                    positive=name in _POSITIVE,
                )
        for name in _BOOLS:
            check_bool(f"CompressConfig.{name}", getattr(self, name))
        for name in _STRINGS:
            check_str(f"CompressConfig.{name}", getattr(self, name))
        if isinstance(self.sensitivity_ratios, list):  # from Python code: keep the tuple type
            object.__setattr__(self, "sensitivity_ratios", tuple(self.sensitivity_ratios))
        if not isinstance(self.sensitivity_ratios, tuple):
            raise ValueError(
                "CompressConfig.sensitivity_ratios must be a list of ratios in (0, 1), got "
                f"{self.sensitivity_ratios!r}"
            )
        for ratio in self.sensitivity_ratios:
            check_number("CompressConfig.sensitivity_ratios", ratio)

    def _check_schedules(self) -> None:
        for name in SCHEDULES:
            schedule = getattr(self, name)
            if not isinstance(schedule, TrainConfig):
                raise ValueError(f"CompressConfig.{name} must be a slimkit.TrainConfig")
            if schedule.seed != 0:
                raise ValueError(
                    f"CompressConfig.{name}.seed is not read: each trial seeds its training "
                    f"from CompressConfig.seed; set that instead (got {name}.seed={schedule.seed})"
                )

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Layout 1 → 2: ``recover_epochs`` and ``recover_lr`` into ``recover_train``,
        ``qat_epochs`` into ``qat_train``, whose learning rate layout 1 took as a tenth of
        ``recover_lr``."""
        if version != 1:
            return super().upgrade(data, version)
        lr = data.get("recover_lr")
        values = nest(
            cls.__name__, data, "recover_train", {"recover_epochs": "epochs", "recover_lr": "lr"}
        )
        values = nest(cls.__name__, values, "qat_train", {"qat_epochs": "epochs"})
        if isinstance(lr, int | float) and not isinstance(lr, bool) and "qat_train" not in data:
            values["qat_train"] = {**values.get("qat_train", {}), "lr": lr / 10}
        return values

    @property
    def budget(self) -> Budget:
        """The accuracy budget (``max_drop``, ``margin_se``) every verdict of the run asks."""
        return Budget(max_drop=self.max_drop, margin_se=self.margin_se)

    @property
    def channel_multiple(self) -> int:
        """``round_to``, or its default: 1 unless the goal is latency; for latency, what the
        kernels of the runtimes it deploys on want (:func:`slimkit.runtime.channel_multiple`
        over :meth:`runtimes`, for int8 graphs when :attr:`int8`, float ones otherwise; 8 for
        eager PyTorch)."""
        if self.round_to is not None:
            return self.round_to
        if self.goal != "latency":
            return 1
        return channel_multiple(self.runtimes(), int8=self.int8)

    @property
    def channel_floor(self) -> int:
        """``min_channels``, or its default (16 for latency on int8 ONNX Runtime)."""
        if self.min_channels is not None:
            return self.min_channels
        return 16 if self.goal == "latency" and self.int8 else 1

    @property
    def cost(self) -> str:
        """``structure_cost``, or its default for the goal: parameters for size, MACs
        otherwise (see :attr:`structure_cost` for why latency is not the default yet)."""
        if self.structure_cost is not None:
            return self.structure_cost
        return "params" if self.goal == "size" else "macs"

    @property
    def keep_param(self) -> str:
        """The search parameter naming the structured cut: ``macs_keep``, ``params_keep`` or
        ``latency_keep``."""
        return f"{self.cost}_keep"

    @property
    def int8(self) -> bool:
        """Whether candidates are quantized to int8 (the runtimes run int8 graphs; eager does not)."""
        return self.quantize and self.backend != "torch"

    def runtimes(self) -> list[str]:
        """The runtimes candidates are timed on: all installed ones for ``auto``."""
        if self.backend == "torch":
            return []
        return available_runtimes() if self.backend == "auto" else [self.backend]

    def scorer(self) -> Any:
        """The :class:`slimkit.measure.Metric` the budget is stated in."""
        from ..measure import Metric, resolve_metric

        return Metric(resolve_metric(self.metric), lower_is_better=self.lower_is_better)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict; a callable ``metric`` is written by its name."""
        data = super().to_dict()
        if self.metric is not None and not isinstance(self.metric, str):
            data["metric"] = self.scorer().name
        return data


#: The knobs each stage reads, beyond those of the stages before it (see :func:`stage_inputs`).
_STAGE_KEYS = {
    "baseline": ("latency_threads", "metric", "lower_is_better"),
    "sensitivity": ("importance", "sensitivity_ratios", "sensitivity_images", "seed"),
    "recovery": ("recover", "recover_train"),
    "plan": (
        "max_drop",
        "goal",
        "min_macs_keep",
        "max_macs_keep",
        "remove_blocks",
        "min_channels",
        "structure_cost",
    ),
}
#: Knobs that only say how long the search goes on: changing them continues the same study.
SEARCH_EXTENT = ("trials", "time_budget_s")
POLISH_KEYS = ("polish_epochs", "polish_trials")
VERIFY_KEYS = ("margin_se",)


def stage_inputs(config: dict[str, Any], stage: str) -> Any:
    """What the output of ``stage`` depends on, from a run's saved configuration.

    A run resumed with other options keeps every finished stage whose inputs are unchanged:
    more trials continue the search; another recovery schedule keeps the measured baseline
    and sensitivity curves (most of an hour on resnet56) and starts a new study. ``stage`` may
    also be ``"study"``: what the search's trials are built from (its inputs without
    :data:`SEARCH_EXTENT`).
    """
    saved = dict(config["compress"])
    criterion = saved.get("importance")
    if isinstance(criterion, dict):  # a criterion object's class record: no knob derives from it
        saved["importance"] = CompressConfig.__dataclass_fields__["importance"].default
    cfg = CompressConfig.from_dict(saved)
    full = cfg.to_dict()
    if isinstance(criterion, dict):
        full["importance"] = criterion
    full["round_to"] = cfg.channel_multiple  # None means the goal's default multiple
    full["min_channels"] = cfg.channel_floor
    full["structure_cost"] = cfg.cost
    later = SEARCH_EXTENT + POLISH_KEYS + VERIFY_KEYS
    steps: list[tuple[str, dict[str, Any]]] = [
        ("baseline", {"data": config.get("data")}),
        ("sensitivity", {"channel_multiple": cfg.channel_multiple, "int8": cfg.int8}),
        ("plan", {}),
        ("recovery", {}),
        (
            "study",
            {**{k: v for k, v in full.items() if k not in later}, "storage": config.get("storage")},
        ),
        ("search", {key: full[key] for key in SEARCH_EXTENT}),
        ("polish", {key: full[key] for key in POLISH_KEYS}),
        ("verify", {key: full[key] for key in VERIFY_KEYS}),
    ]
    inputs: dict[str, Any] = {}
    for name, added in steps:
        inputs.update({key: full[key] for key in _STAGE_KEYS.get(name, ())}, **added)
        if name == stage:
            break
    return inputs
