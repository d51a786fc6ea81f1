"""scripts/references.py: a trained artifact becomes a row of docs/references.md and a checksum."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import slimkit
from slimkit.testing import seeded_model


def test_built_and_missing_references_are_listed(
    load_script: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    references = load_script("scripts/references.py")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("built", "missing"):
        text = f"model: seed-cnn-slim\nout: refs/{name}.safetensors\ntrain: {{epochs: 40}}\n"
        (recipes / f"{name}.yaml").write_text(text)
    provenance = {"config": {"epochs": 40}, "wall_time_s": 4000.0, "threads": 1, "cpu": "Some CPU"}
    metrics = {"test_accuracy": 91.234, "val_accuracy": 91.5}
    artifact = tmp_path / "refs" / "built.safetensors"
    artifact.parent.mkdir()
    slimkit.save(seeded_model("seed-cnn-slim"), artifact, provenance=provenance, metrics=metrics)

    refs = [references.reference(p, root=tmp_path) for p in sorted(recipes.glob("*.yaml"))]
    page = references.render(refs)
    assert (
        "| seed-cnn-slim | 91.23% | 91.50% | 40 | 1 h 07 min | "
        "`slimkit train --recipe recipes/references/built.yaml --resume` | Some CPU, 1 thread |"
    ) in page
    assert "| seed-cnn-slim | — | — | not built | — |" in page
    shaped = recipes / "shaped.yaml"
    shaped.write_text(
        "model: timm:vit_tiny_patch16_224\nmodel_args: {patch_size: 4, depth: 6}\n"
        "out: refs/shaped.safetensors\n"
    )
    page = references.render([references.reference(shaped, root=tmp_path)])
    assert "| timm:vit_tiny_patch16_224 (patch_size=4, depth=6) | — |" in page
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert references.checksums(refs) == f"{digest}  refs/built.safetensors\n"
