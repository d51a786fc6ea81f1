"""One base for config values: plain-dict round trips derived from the dataclass fields.

A config's dict holds every field by name, in field order: nested configs as dicts, tuples as
lists, mappings as dicts. A class with a :attr:`ConfigBase.TAG` writes it first
(``{"method": "structured", ...}``): it tells the configs of one family apart, also when one
is nested in a field typed as a union (``scope: Global | PerLayer``). A value that is neither
plain data nor a config (a criterion object, say) is recorded by its class name, and a dict
holding such a record cannot be turned back into a config.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar, Union, get_args, get_origin, get_type_hints

C = TypeVar("C")

#: The key of the record an object that is not a config leaves in a config's dict.
CLASS_KEY = "class"
_PLAIN = (bool, int, float, str)
_MAPPINGS = (dict, Mapping)


class ConfigBase:
    """The ``to_dict`` / ``from_dict`` pair of a frozen config dataclass, from its fields.

    Example:
        >>> @dataclass(frozen=True, kw_only=True)
        ... class Schedule(ConfigBase):
        ...     TAG = ("type", "steps")
        ...     steps: tuple[int, ...] = (1, 2)
        >>> Schedule().to_dict()
        {'type': 'steps', 'steps': [1, 2]}
        >>> Schedule.from_dict({"steps": [3]})
        Schedule(steps=(3,))
    """

    #: ``(key, value)`` written first by :meth:`to_dict`, checked (when present) by
    #: :meth:`from_dict`; None for a config that needs no tag.
    TAG: ClassVar[tuple[str, str] | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (see the module docstring for the layout)."""
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a config from :meth:`to_dict` output (the tag may be left out).

        Raises:
            ValueError: for an unknown key (the message lists the valid ones), a missing
                required one, a nested value of the wrong kind, or a bad value.
        """
        return from_plain(cls, data)


def to_plain(cfg: Any) -> dict[str, Any]:
    """The dict of a config dataclass instance: its tag, then every field."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"to_plain() takes a dataclass instance, got {cfg!r}")
    tag = getattr(type(cfg), "TAG", None)
    out: dict[str, Any] = {tag[0]: tag[1]} if tag else {}
    for f in dataclasses.fields(cfg):
        out[f.name] = plain_value(getattr(cfg, f.name))
    return out


def plain_value(value: Any) -> Any:
    """``value`` as JSON-ready data; an object that is no config becomes a class record."""
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, ConfigBase):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [plain_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    return object_record(value)


def object_record(value: Any) -> dict[str, Any]:
    """What a config's dict keeps of an object: its class, and its ``name`` if it has one."""
    kind = type(value)
    record: dict[str, Any] = {CLASS_KEY: f"{kind.__module__}.{kind.__qualname__}"}
    name = getattr(value, "name", None)
    if isinstance(name, str):
        record["name"] = name
    return record


def _is_record(value: Any) -> bool:
    return isinstance(value, Mapping) and CLASS_KEY in value and set(value) <= {CLASS_KEY, "name"}


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return get_type_hints(cls)


def _required(cls: Any) -> list[str]:
    missing = dataclasses.MISSING
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is missing and f.default_factory is missing
    ]


def from_plain(cls: type[C], data: Mapping[str, Any]) -> C:
    """Build the config dataclass ``cls`` from a dict written by :func:`to_plain`.

    Nested configs, unions of tagged configs and tuples are rebuilt from the field types.

    Raises:
        ValueError: for an unknown key (the message lists the valid ones), a missing
            required one, another config's tag, or a field that recorded an object.
    """
    kind: Any = cls  # a dataclass type: what dataclasses.fields and get_type_hints read
    if not _config_type(kind):
        raise TypeError(f"from_plain() takes a dataclass type, got {cls!r}")
    name = cls.__name__
    if not isinstance(data, Mapping):
        raise ValueError(f"{name} is written as a mapping of its fields, got {data!r}")
    values = dict(data)
    tag = getattr(cls, "TAG", None)
    if tag is not None and tag[0] in values:
        written = values.pop(tag[0])
        if written != tag[1]:
            raise ValueError(f"{name} has {tag[0]} {tag[1]!r}, not {written!r}")
    valid = sorted(f.name for f in dataclasses.fields(kind) if f.init)
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown keys {unknown} for {name}; valid: {valid}")
    missing = [key for key in _required(kind) if key not in values]
    if missing:
        raise ValueError(f"{name} needs {missing}")
    hints = _hints(kind)
    return cls(**{k: _value(hints[k], v, f"{name}.{k}") for k, v in values.items()})


def _config_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _refuse_record(value: Mapping[str, Any], where: str) -> None:
    raise ValueError(
        f"{where} held a {value[CLASS_KEY]} object, which a dict records by class name only "
        "and cannot rebuild: pass the object itself, or register it under a name and write "
        "that name"
    )


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` read back as the field type ``hint`` says."""
    if value is None:
        return None
    if _is_record(value):
        _refuse_record(value, where)
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return _union([a for a in get_args(hint) if a is not type(None)], value, where)
    if _config_type(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} is a mapping of {hint.__name__} fields, got {value!r}")
        return hint.from_dict(value) if issubclass(hint, ConfigBase) else from_plain(hint, value)
    if origin is tuple and isinstance(value, list | tuple):
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v, where) for v in value)
        if len(args) == len(value):
            return tuple(_value(a, v, where) for a, v in zip(args, value, strict=True))
        return tuple(value)
    if origin in _MAPPINGS and isinstance(value, Mapping):
        return dict(value)
    return value


def _union(options: list[Any], value: Any, where: str) -> Any:
    """A value of a union field: a config told by its tag, a list read as the tuple member."""
    if isinstance(value, Mapping):
        return _union_mapping(options, value, where)
    if isinstance(value, list | tuple):
        for option in options:
            if get_origin(option) is tuple:
                return _value(option, value, where)
    return value


def _union_mapping(options: list[Any], value: Mapping[str, Any], where: str) -> Any:
    configs = [a for a in options if _config_type(a)]
    tags = [(c, c.TAG) for c in configs if getattr(c, "TAG", None) is not None]
    for option, (key, tag) in tags:
        if value.get(key) == tag:
            return _value(option, value, where)
    untagged = [c for c in configs if getattr(c, "TAG", None) is None]
    if len(untagged) == 1:
        return _value(untagged[0], value, where)
    if not configs or any(a in _MAPPINGS or get_origin(a) in _MAPPINGS for a in options):
        return dict(value)
    if not tags:
        names = [c.__name__ for c in configs]
        raise ValueError(f"{where} is one of {names}, and a dict cannot say which")
    key = tags[0][1][0]
    allowed = sorted(tag for _, (_, tag) in tags)
    raise ValueError(f"{where} {key} must be one of {allowed}, got {value.get(key)!r}")
