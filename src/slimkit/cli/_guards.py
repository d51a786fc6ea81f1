"""Checks of a command's input and output paths, made before any work is done for them."""

from __future__ import annotations

from pathlib import Path

from .. import export


def refuse_quantized(artifact: str | Path, command: str) -> None:
    """Refuse an already quantized artifact as the input of a command that transforms a float
    model (``quantize``, ``prune``, ``slim``, ``compress``, a ``distill`` student).

    Quantizing int8 weights again, or pruning the float copy an int8 graph was built from,
    would write a model that does not compute what its spec says; the float parent is the
    input that works.

    Raises:
        ArtifactError: if the artifact is missing or damaged (from reading its spec).
        ValueError: naming the artifact, its scheme and the parent to pass instead.
    """
    spec = export.read_spec(artifact)
    section = spec.get("quantization")
    if section is None:
        return
    config = section.get("config")
    scheme = section.get("scheme") or (config.get("scheme") if isinstance(config, dict) else None)
    provenance = spec.get("provenance")
    parent = provenance.get("parent") if isinstance(provenance, dict) else None
    instead = f"its float parent {parent}" if isinstance(parent, str) else "the float model"
    raise ValueError(
        f"{artifact} is already quantized ({scheme or 'unknown scheme'}); {command} works on "
        f"float models: pass {instead} instead"
    )
