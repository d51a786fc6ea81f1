"""Example invocations that end each command's ``--help``.

Every one runs on the built-in Fashion-MNIST data and the reference artifacts in
``references/`` (``make references``), but the sentence encoder's, which reads a Hugging Face
directory and a corpus of your own (``make corpus``); a test parses each of them with the real
parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

#: command → example command lines, each ``slimkit <command> ...``.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "models": ("slimkit models", "slimkit models --json"),
    "train": (
        "slimkit train --model seed-cnn --data fashion-mnist --epochs 12 --out seed-cnn.safetensors",
        "slimkit train --recipe recipes/references/seed-cnn.yaml --resume",
        "slimkit train --model timm:vit_tiny_patch16_224 --model-arg patch_size=4 "
        "--model-arg depth=6 --model-arg embed_dim=96 --model-arg num_heads=3 --epochs 2 "
        "--out vit.safetensors",
    ),
    "profile": (
        "slimkit profile references/seed-cnn.safetensors references/seed-cnn-slim.safetensors "
        "--threads 1",
        "slimkit profile references/resnet20.safetensors --no-accuracy --json",
    ),
    "prune": (
        "slimkit prune references/seed-cnn.safetensors --sparsity 0.5 --out pruned.safetensors",
        "slimkit prune references/seed-cnn.safetensors --max-drop 0.5 --out sparse.safetensors",
        "slimkit prune references/resnet20.safetensors --method structured --target-macs 0.5 "
        "--out resnet20-half.safetensors",
    ),
    "graph": (
        "slimkit graph resnet20 --limit 5",
        "slimkit graph references/seed-cnn.safetensors --members",
    ),
    "quantize": (
        "slimkit quantize references/seed-cnn.safetensors --scheme int8-static "
        "--out seed-cnn-int8.safetensors",
        "slimkit quantize references/seed-cnn.safetensors --sensitivity",
    ),
    "distill": (
        "slimkit distill --teacher references/seed-cnn.safetensors --student seed-cnn-slim "
        "--epochs 10 --out student.safetensors",
    ),
    "slim": (
        "slimkit slim references/seed-cnn.safetensors --width 0.5 --out seed-cnn-half.safetensors",
    ),
    "compress": (
        "slimkit compress references/seed-cnn.safetensors --max-drop 0.5 --goal latency "
        "--out runs/seed-cnn",
        "slimkit compress references/seed-cnn.safetensors --max-drop 0.5 --goal latency "
        "--out runs/seed-cnn --resume",
        "slimkit compress models/all-MiniLM-L6-v2 --task sentence-embedding --data "
        "text:runs/corpus --min-cosine 0.97 --distill-steps 2000 --out runs/minilm",
    ),
    "worker": ("slimkit worker runs/seed-cnn",),
    "run": ("slimkit run recipes/seed-cnn.yaml compress.trials=4",),
    "report": ("slimkit report runs/seed-cnn",),
}

#: What ``slimkit --help`` ends with.
OVERVIEW = (
    "slimkit models",
    "slimkit prune references/seed-cnn.safetensors --sparsity 0.5 --out pruned.safetensors",
    "slimkit compress references/seed-cnn.safetensors --max-drop 0.5 --out runs/seed-cnn",
)


def epilog(examples: tuple[str, ...]) -> str:
    """The ``examples:`` block a help text ends with."""
    return "\n".join(["examples:", *(f"  {example}" for example in examples)])


def add_examples(
    parser: argparse.ArgumentParser, commands: Mapping[str, argparse.ArgumentParser]
) -> None:
    """End ``slimkit --help`` and each command's ``--help`` with its examples."""
    parser.epilog = f"`slimkit <command> --help` explains a command.\n\n{epilog(OVERVIEW)}"
    for name, command in commands.items():
        if name in EXAMPLES:
            command.epilog = epilog(EXAMPLES[name])
