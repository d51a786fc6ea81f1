"""The dependency graph: groups of coupled channels, pruning plans, surgery and verification."""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UnsupportedOpError
from ._labels import Labels
from ._trace import BindingKey, PositionKey, TraceContext, trace


@dataclass(frozen=True)
class Member:
    """One parameter dimension a group touches, and how many of its indices the group owns."""

    module: str
    tensor: str
    dim: int
    size: int

    def __str__(self) -> str:
        return f"{self.module or '<root>'}.{self.tensor}[{self.dim}]×{self.size}"


@dataclass
class Group:
    """Channels coupled across layers: removing unit ``i`` removes it from every member.

    Attributes:
        index: position in :attr:`DependencyGraph.groups`.
        members: the parameter dimensions touched (weights, biases, norm statistics, ...).
        units: one union-find label per prunable unit (a channel, a conv group or a head).
        blocked_units: how many units of the same structure cannot be pruned.
        reasons: why those units (or the whole group) are blocked.
        unit_size: channels per unit (the fewest any member holds, e.g. a head's width).
        sources: the layers whose output channels these are (what ``PerLayer`` overrides and
            ``ignore`` name).
    """

    index: int
    members: tuple[Member, ...]
    units: np.ndarray
    blocked_units: int = 0
    reasons: tuple[str, ...] = ()
    unit_size: int = 1
    sources: tuple[str, ...] = ()

    @property
    def prunable(self) -> bool:
        return len(self.units) > 0

    @property
    def modules(self) -> list[str]:
        return list(dict.fromkeys(m.module for m in self.members))

    @property
    def channels(self) -> int:
        """Prunable channels (units × unit size)."""
        return len(self.units) * self.unit_size


@dataclass
class Plan:
    """What a set of removed units means for each tensor dimension and width attribute."""

    keep: dict[PositionKey, torch.Tensor]
    attrs: dict[BindingKey, int]


@dataclass
class Structure:
    """Shapes and attribute values that differ from the freshly built architecture."""

    tensors: dict[str, list[int]] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Blocks replaced by ``nn.Identity`` (depth pruning), by module path.
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tensors": dict(self.tensors),
            "attrs": {k: dict(v) for k, v in self.attrs.items()},
        }
        if self.removed:
            data["removed"] = list(self.removed)
        return data

    def merge(self, other: Structure) -> Structure:
        attrs = {k: dict(v) for k, v in self.attrs.items()}
        for path, values in other.attrs.items():
            attrs.setdefault(path, {}).update(values)
        removed = sorted(set(self.removed) | set(other.removed))
        return Structure({**self.tensors, **other.tensors}, attrs).without(removed)

    def without(self, blocks: list[str]) -> Structure:
        """This structure with ``blocks`` removed: what was resized inside them is dropped."""
        if not blocks:
            return self

        def inside(path: str) -> bool:
            return any(path == b or path.startswith(f"{b}.") for b in blocks)

        return Structure(
            {k: v for k, v in self.tensors.items() if not inside(k.rpartition(".")[0])},
            {k: dict(v) for k, v in self.attrs.items() if not inside(k)},
            sorted(set(self.removed) | set(blocks)),
        )


class DependencyGraph:
    """Coupled channel groups of a model, found by tracing it on example inputs.

    Example:
        >>> graph = DependencyGraph.build(model, torch.randn(1, 1, 28, 28))
        >>> print(graph.table())
        >>> group = graph.groups[0]; group.members, len(group.units)

    Args:
        ctx: the trace (built by :meth:`build`).
        example_inputs: what the model was traced on (kept to verify pruned models).
    """

    def __init__(self, ctx: TraceContext, example_inputs: Any) -> None:
        self.ctx = ctx
        self.example_inputs = example_inputs
        self.groups: list[Group] = []
        self.divergences: list[str] = []
        self._root_cache: dict[int, np.ndarray] = {}
        self.regroup()

    @classmethod
    def build(
        cls, model: nn.Module, example_inputs: Any, *, ignore: Iterable[str] = ()
    ) -> DependencyGraph:
        """Trace ``model`` and group its coupled channels.

        Args:
            model: the model (not modified).
            example_inputs: a tensor, a tuple of positional inputs or a dict of keyword inputs.
            ignore: module names or fnmatch patterns whose output channels must be kept.

        Raises:
            UnsupportedOpError: if the model cannot be traced.
            ValueError: if an ``ignore`` pattern matches no module.
        """
        ctx = trace(model, example_inputs)
        _block_ignored(ctx, model, tuple(ignore))
        return cls(ctx, example_inputs)

    # -- groups ---------------------------------------------------------------------------
    def roots(self, labels: Labels) -> np.ndarray:
        cached = self._root_cache.get(id(labels))
        if cached is None:
            cached = self.ctx.uf.roots(labels)
            self._root_cache[id(labels)] = cached
        return cached

    def regroup(self) -> None:
        """Recompute the groups (after blocking more units)."""
        uf = self.ctx.uf
        self._root_cache.clear()
        sources = {uf.find(s) for s in uf.sources}
        keys_of: dict[int, dict[PositionKey, int]] = defaultdict(dict)
        for key, labels in self.ctx.positions.items():
            roots, counts = np.unique(self.roots(labels), return_counts=True)
            for root, count in zip(roots.tolist(), counts.tolist(), strict=True):
                if root in sources:
                    keys_of[root][key] = count
        self._creators: dict[int, list[str]] = defaultdict(list)
        for path, created in self.ctx.created.items():
            for labels in created:
                for root in np.unique(self.roots(labels)).tolist():
                    if path not in self._creators[root]:
                        self._creators[root].append(path)
        by_signature: dict[tuple[PositionKey, ...], list[int]] = defaultdict(list)
        for root, keys in keys_of.items():
            by_signature[tuple(sorted(keys))].append(root)
        self.groups = []
        for signature, members in sorted(by_signature.items(), key=lambda kv: min(kv[1])):
            self.groups.append(self._group(len(self.groups), signature, sorted(members), keys_of))

    def _group(
        self,
        index: int,
        signature: tuple[PositionKey, ...],
        roots: list[int],
        keys_of: dict[int, dict[PositionKey, int]],
    ) -> Group:
        uf = self.ctx.uf
        prunable = [r for r in roots if not uf.blocked(r)]
        reasons: list[str] = []
        for r in roots:
            for reason in uf.blocked(r):
                if reason not in reasons:
                    reasons.append(reason)
        members = tuple(
            Member(key[0], key[1], key[2], sum(keys_of[r][key] for r in roots)) for key in signature
        )
        unit_size = max(1, min(keys_of[roots[0]][key] for key in signature))
        sources = dict.fromkeys(p for r in roots for p in self._creators.get(r, []))
        return Group(
            index,
            members,
            np.array(prunable, dtype=np.int64),
            len(roots) - len(prunable),
            tuple(reasons[:6]),
            unit_size,
            tuple(sources),
        )

    def unit_index(self, group: Group, key: PositionKey) -> np.ndarray:
        """For each index along ``key``'s tensor dimension: its unit in ``group``, or -1."""
        roots = self.roots(self.ctx.positions[key])
        lookup = {int(r): i for i, r in enumerate(group.units.tolist())}
        return np.fromiter((lookup.get(int(r), -1) for r in roots), np.int64, len(roots))

    @property
    def unsupported(self) -> dict[str, list[str]]:
        """Op name → the modules where an op without a rule blocked channels."""
        return self.ctx.unsupported

    def block_units(self, units: Iterable[int], reason: str) -> None:
        labels = np.fromiter(units, np.int64)
        self.ctx.block(labels, reason)

    # -- plans and surgery ----------------------------------------------------------------
    def plan(self, removed: Iterable[int]) -> Plan:
        """What to keep of every tensor dimension and width attribute when ``removed`` units go."""
        gone = np.unique(np.fromiter((self.ctx.uf.find(int(r)) for r in removed), np.int64))
        keep: dict[PositionKey, torch.Tensor] = {}
        for key, labels in self.ctx.positions.items():
            mask = ~np.isin(self.roots(labels), gone)
            if not mask.all():
                keep[key] = torch.from_numpy(np.nonzero(mask)[0])
        attrs: dict[BindingKey, int] = {}
        for binding, labels in self.ctx.bindings.items():
            kept = int((~np.isin(self.roots(labels), gone)).sum())
            if kept != len(labels):
                attrs[binding] = kept
        return Plan(keep, attrs)

    def expected_shapes(self, removed: Iterable[int]) -> list[list[tuple[int, ...]]]:
        """The output shapes every traced op should have after removing ``removed``."""
        gone = np.unique(np.fromiter((self.ctx.uf.find(int(r)) for r in removed), np.int64))
        counts: dict[int, int] = {}

        def size(original: int, labels: Labels | None) -> int:
            if labels is None:
                return original
            if id(labels) not in counts:
                counts[id(labels)] = int((~np.isin(self.roots(labels), gone)).sum())
            return counts[id(labels)]

        return [
            [
                tuple(size(s, lab) for s, lab in zip(shape, dims, strict=True))
                for shape, dims in zip(rec.out_shapes, rec.out_dims, strict=True)
            ]
            for rec in self.ctx.records
        ]

    def verify(self, pruned: nn.Module, removed: Iterable[int]) -> int | None:
        """Re-trace ``pruned``; the index of the first op whose shapes differ from the plan."""
        removed = list(removed)
        expected = self.expected_shapes(removed)
        ctx = trace(pruned, self.example_inputs, strict=False)
        for i, (record, shapes) in enumerate(zip(self.ctx.records, expected, strict=True)):
            if i >= len(ctx.records):
                return i
            got = ctx.records[i]
            if got.name != record.name or got.out_shapes != shapes:
                return i
        return ctx.failed[0] if ctx.failed else None

    def block_op(self, index: int, pruned_note: str = "") -> bool:
        """Block every channel reaching op ``index``; False if nothing new could be blocked."""
        record = self.ctx.records[min(index, len(self.ctx.records) - 1)]
        reason = f"the pruned model diverged at op {record.name!r} in {record.where}{pruned_note}"
        self.divergences.append(reason)
        if self._block_dims([*record.in_dims, *record.out_dims], reason):
            return True
        # The op's own tensors carry no prunable channels: a width reached it through Python
        # (``B, N, D = x.shape`` … ``reshape(B, N, D)``). Freeze what enters the enclosing
        # modules, innermost first, until something changes.
        for path in reversed(record.stack):
            if self._block_dims(self.ctx.entries.get(path, []), f"{reason} (inputs of {path})"):
                return True
        return False

    def _block_dims(self, dims_list: list[tuple[Labels | None, ...]], reason: str) -> bool:
        before = sum(len(g.units) for g in self.groups)
        for dims in dims_list:
            for labels in dims:
                self.ctx.block(labels, reason)
        self.regroup()
        return sum(len(g.units) for g in self.groups) < before

    # -- reporting ------------------------------------------------------------------------
    def table(self, *, limit: int | None = None, members: bool = False) -> str:
        """A human-readable table: per group, the layers whose channels these are (→ the
        other layers they touch), prunable units, channels per unit, blocked units and why.

        Args:
            limit: print at most this many groups.
            members: list every tensor dimension a group touches, with sizes.
        """
        lines = [
            f"{'group':>5}  {'units':>6}  {'unit':>4}  {'blocked':>7}  layers (source → touched)"
        ]
        for group in self.groups[:limit]:
            sources = list(group.sources) or group.modules[:1]
            touched = [m for m in group.modules if m not in sources]
            shown = ", ".join(touched[:4]) + (
                f" (+{len(touched) - 4} more)" if len(touched) > 4 else ""
            )
            lines.append(
                f"{group.index:>5}  {len(group.units):>6}  {group.unit_size:>4}  "
                f"{group.blocked_units:>7}  {', '.join(sources[:3])}{' → ' + shown if shown else ''}"
            )
            if members:
                lines.extend(f"{'':>30}{m}" for m in group.members)
            lines.extend(f"{'':>30}blocked: {reason}" for reason in group.reasons[:2])
        if limit is not None and len(self.groups) > limit:
            lines.append(f"... {len(self.groups) - limit} more groups")
        for name, places in self.unsupported.items():
            lines.append(f"unsupported op {name!r} in {', '.join(places[:3])}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """Counts for machines: groups, prunable units, blocked units, unsupported ops."""
        return {
            "groups": len(self.groups),
            "prunable_groups": sum(g.prunable for g in self.groups),
            "prunable_units": sum(len(g.units) for g in self.groups),
            "blocked_units": sum(g.blocked_units for g in self.groups),
            "unsupported_ops": {k: list(v) for k, v in self.unsupported.items()},
        }


def _block_ignored(ctx: TraceContext, model: nn.Module, patterns: tuple[str, ...]) -> None:
    names = [name for name, _ in model.named_modules()]
    for pattern in patterns:
        matched = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ValueError(
                f"ignore pattern {pattern!r} matches no module; module names look like "
                f"{', '.join(names[1:6])}, ..."
            )
        for name in matched:
            for labels in ctx.created.get(name, []):
                ctx.block(labels, f"{name} is ignored (its output channels are kept)")


@torch.no_grad()
def apply_plan(model: nn.Module, plan: Plan) -> Structure:
    """Slice parameters and buffers and set width attributes of ``model`` in place."""
    structure = Structure()
    for (path, name, dim), keep in plan.keep.items():
        module = model.get_submodule(path)
        old = getattr(module, name)
        new = old.detach().index_select(dim, keep.to(old.device)).clone()
        if name in module._parameters:
            module._parameters[name] = nn.Parameter(new, requires_grad=old.requires_grad)
        else:
            module._buffers[name] = new
        structure.tensors[f"{path}.{name}" if path else name] = list(new.shape)
    for (path, attr, index), value in plan.attrs.items():
        module = model.get_submodule(path)
        if index is None:
            setattr(module, attr, value)
        else:
            items = list(getattr(module, attr))
            items[index] = value
            setattr(module, attr, type(getattr(module, attr))(items))
        structure.attrs.setdefault(path, {})[attr] = _jsonable(getattr(module, attr))
    sync_config(model)
    return structure


def sync_config(model: nn.Module) -> None:
    """Update a Hugging Face style ``model.config`` to the pruned widths, where uniform.

    ``num_attention_heads`` and ``intermediate_size`` are set when every layer has the same
    value; with per-layer differences the config keeps the original numbers (the modules
    themselves are always right).
    """
    config = getattr(model, "config", None)
    if config is None:
        return
    heads = {
        vars(m)["num_attention_heads"] for m in model.modules() if "num_attention_heads" in vars(m)
    }
    if len(heads) == 1 and hasattr(config, "num_attention_heads"):
        config.num_attention_heads = heads.pop()
    dense = [
        getattr(m, "dense", None)
        for m in model.modules()
        if type(m).__name__.endswith("Intermediate")
    ]
    ffn = {d.out_features for d in dense if isinstance(d, nn.Linear)}
    if len(ffn) == 1 and hasattr(config, "intermediate_size"):
        config.intermediate_size = ffn.pop()


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def restore_structure(model: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Remove the blocks, resize ``model``'s tensors and set its width attributes as a saved
    structure says.

    The tensors are left uninitialised: load the saved weights next.

    Raises:
        UnsupportedOpError: if a module or tensor named in the structure does not exist.
    """
    if structure.get("removed"):
        from ._blocks import remove_blocks

        remove_blocks(model, structure["removed"])
    for name, shape in structure.get("tensors", {}).items():
        path, _, attr = name.rpartition(".")
        try:
            module = model.get_submodule(path)
        except AttributeError:
            raise UnsupportedOpError(
                f"the saved structure resizes {name!r} but the model has no module {path!r}; "
                "the artifact was saved for another architecture"
            ) from None
        old = getattr(module, attr, None)
        if not isinstance(old, torch.Tensor):
            raise UnsupportedOpError(f"the saved structure resizes {name!r}, which is not a tensor")
        new = torch.empty(shape, dtype=old.dtype, device=old.device)
        if attr in module._parameters:
            module._parameters[attr] = nn.Parameter(new, requires_grad=old.requires_grad)
        else:
            module._buffers[attr] = new
    for path, attrs in structure.get("attrs", {}).items():
        module = model.get_submodule(path)
        for attr, value in attrs.items():
            current = getattr(module, attr)
            setattr(module, attr, type(current)(value) if isinstance(current, tuple) else value)
    return model
