"""One base for config values: plain-dict round trips derived from the dataclass fields.

A config's dict holds every field by name, in field order: nested configs as dicts, tuples as
lists, mappings as dicts. A class with a :attr:`ConfigBase.TAG` writes it first
(``{"method": "structured", ...}``): it tells the configs of one family apart, also when one
is nested in a field typed as a union (``scope: Global | PerLayer``). A value that is neither
plain data nor a config (a criterion object, say) is recorded by its class name, and a dict
holding such a record cannot be turned back into a config.

A config whose fields are renamed or regrouped bumps its :attr:`ConfigBase.VERSION`, writes it
after the tag (``"version": 2``; layout 1 writes none) and reads the layouts before it with
:meth:`ConfigBase.upgrade`, so that the dicts run directories and artifacts already hold keep
loading. A nested config written in part (a recipe's ``recover_train: {epochs: 4}``) is
completed from the field's default, not from the nested class's defaults.
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
#: The key of a config's layout version in its dict (absent: layout 1).
VERSION_KEY = "version"
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
    #: The layout of the config's dict: bump it when a field is renamed or regrouped, and
    #: teach :meth:`upgrade` to read the layout before.
    VERSION: ClassVar[int] = 1

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """``data`` of layout ``version`` rewritten in layout ``version + 1``.

        A config of layout 1 has nothing older to read; one that bumps :attr:`VERSION`
        overrides this. ``data`` may be partial (a recipe's section): rename what it holds.

        Raises:
            ValueError: for a layout this config cannot read.
        """
        raise ValueError(f"{cls.__name__} has no layout {version} to read")

    @classmethod
    def upgraded(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` (a whole or partial dict of any layout this config reads) in the layout
        :meth:`to_dict` writes: version key included, nested configs completed from their
        field's default; keys that are no field pass through.

        Raises:
            ValueError: for a version that is not an integer, or newer than :attr:`VERSION`.
        """
        values = dict(data)
        version = _version(cls, values.pop(VERSION_KEY, 1))
        while version < cls.VERSION:
            values = cls.upgrade(values, version)
            version += 1
        if cls.VERSION > 1:
            values[VERSION_KEY] = cls.VERSION
        return _completed_nested(cls, values)

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


def nest(
    owner: str, data: Mapping[str, Any], section: str, keys: Mapping[str, str]
) -> dict[str, Any]:
    """``data`` with its ``keys`` (old key → key in ``section``) moved into the ``section``
    dict: a step of :meth:`ConfigBase.upgrade` for flat fields regrouped into a nested config.

    Example:
        >>> nest("Cfg", {"epochs": 3, "tag": 1}, "train", {"epochs": "epochs"})
        {'tag': 1, 'train': {'epochs': 3}}

    Raises:
        ValueError: if ``data`` holds both a moved key and ``section``: two spellings of one
            setting.
    """
    values = dict(data)
    moved = {new: values.pop(old) for old, new in keys.items() if old in values}
    if not moved:
        return values
    if section in values:
        old = sorted(k for k in keys if k in data)
        raise ValueError(
            f"{owner} has both {section} and {old}, which older slimkit versions wrote for "
            f"it: write {section} alone"
        )
    values[section] = moved
    return values


def to_plain(cfg: Any) -> dict[str, Any]:
    """The dict of a config dataclass instance: its tag, then every field."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"to_plain() takes a dataclass instance, got {cfg!r}")
    tag = getattr(type(cfg), "TAG", None)
    out: dict[str, Any] = {tag[0]: tag[1]} if tag else {}
    version = getattr(type(cfg), "VERSION", 1)
    if version > 1:
        out[VERSION_KEY] = version
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


def _version(cls: Any, written: Any) -> int:
    """The layout version ``written`` in a dict of ``cls``, checked against what it reads."""
    newest = getattr(cls, "VERSION", 1)
    if isinstance(written, bool) or not isinstance(written, int) or written < 1:
        raise ValueError(f"{cls.__name__}.{VERSION_KEY} must be an integer >= 1, got {written!r}")
    if written > newest:
        raise ValueError(
            f"{cls.__name__} of layout {written} was written by a newer slimkit; this one reads "
            f"layouts up to {newest}: upgrade slimkit"
        )
    return written


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
    if issubclass(cls, ConfigBase):
        values = cls.upgraded(values)
        values.pop(VERSION_KEY, None)
    else:
        values = _completed_nested(kind, values)
    valid = sorted(f.name for f in dataclasses.fields(kind) if f.init)
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown keys {unknown} for {name}; valid: {valid}")
    missing = [key for key in _required(kind) if key not in values]
    if missing:
        raise ValueError(f"{name} needs {missing}")
    hints = _hints(kind)
    return cls(**{k: _value(hints[k], v, f"{name}.{k}") for k, v in values.items()})


def _completed_nested(cls: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each nested config written in part completed from its field's default
    (see :func:`_config_defaults`), not from the nested class's own defaults."""
    for key, default in _config_defaults(cls).items():
        if key in values:
            values[key] = _completed(default, values[key])
    return values


@functools.cache
def _config_defaults(cls: Any) -> dict[str, ConfigBase]:
    """The default of each field of ``cls`` typed as one config class (not a union)."""
    if not _config_type(cls):
        return {}
    hints, found = _hints(cls), {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        if type(default) is hints[f.name] and isinstance(default, ConfigBase):
            found[f.name] = default
    return found


def _completed(default: ConfigBase | None, value: Any) -> Any:
    """A nested config's dict with the keys it leaves out taken from the field's default."""
    if default is None or not isinstance(value, Mapping) or _is_record(value):
        return value
    return {**default.to_dict(), **type(default).upgraded(value)}


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
