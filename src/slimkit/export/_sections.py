"""Spec sections other packages add to an artifact: export stores them, its owner reads them.

``export`` knows how to write and read an artifact, not what quantization is: the package
that puts a section on a model registers how to describe it, how to rebuild the model's
structure from it on load, and what deployable files to write beside the artifact. export
never imports those packages, so the dependency runs one way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .._registry import Registry


@dataclass(frozen=True, kw_only=True)
class SpecSection:
    """One section of an artifact's spec, owned by another package.

    Attributes:
        key: the spec key (``"quantization"``).
        attr: the model attribute whose presence means the model carries this section.
        describe: ``model -> dict``: the section as it is saved.
        restore: ``(fresh model, section) -> model``: the structure the section records,
            rebuilt on a freshly built model before its tensors are loaded.
        deploy: ``(model, artifact path) -> graph or None``: deployable files written beside
            the artifact before it; the artifact records the returned graph's SHA-256.
    """

    key: str
    attr: str
    describe: Callable[[nn.Module], dict[str, Any]]
    restore: Callable[[nn.Module, dict[str, Any]], nn.Module]
    deploy: Callable[[nn.Module, Path], Path | None] | None = None


#: Sections by spec key, in the order they are written and restored.
SECTIONS: Registry[SpecSection] = Registry("spec section")


def register_spec_section(section: SpecSection) -> SpecSection:
    """Make :func:`slimkit.save` write ``section`` and :func:`slimkit.load` restore it."""
    SECTIONS.register(section.key, section)
    return section


def carried(model: nn.Module) -> list[SpecSection]:
    """The registered sections ``model`` carries."""
    return [
        SECTIONS.get(key)
        for key in SECTIONS.names()
        if getattr(model, SECTIONS.get(key).attr, None) is not None
    ]
