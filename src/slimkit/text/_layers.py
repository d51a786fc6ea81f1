"""Layer dropping: whole transformer layers removed from a sentence encoder.

Which layers go is measured on the user's sentences, not assumed (neither "the top ones" nor
"every other one"): each remaining layer is skipped alone, the hidden states passing straight
to the next, and the layer whose absence moves the embeddings least (the highest mean cosine
to the unpruned encoder's embeddings) is removed. The search is greedy and re-measured after
every removal, because the layers' roles shift once a neighbour is gone. A layer of a
residual transformer can be skipped without any change to the others: its input and output
have the same shape.

Transformers' own ``prune_heads`` shrinks attention heads but has no layer removal, and
torch-pruning's dependency graph removes channels, not whole layers: hence this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import PruningTargetError
from ..models import SentenceEncoder

#: Where BERT-family models keep their layers, and the config keys that count them.
_LAYER_LISTS = (("encoder", "layer"), ("transformer", "layer"), ("encoder", "layers"))
_COUNT_KEYS = ("num_hidden_layers", "n_layers")


def layer_list(backbone: nn.Module) -> tuple[nn.Module, str]:
    """The module holding ``backbone``'s transformer layers and the name of its list.

    Raises:
        PruningTargetError: if no ``nn.ModuleList`` of layers is found.
    """
    for parent_name, name in _LAYER_LISTS:
        parent = getattr(backbone, parent_name, None)
        if isinstance(getattr(parent, name, None), nn.ModuleList):
            return parent, name  # type: ignore[return-value]
    raise PruningTargetError(
        f"{type(backbone).__name__} keeps no list of transformer layers where slimkit looks "
        "(encoder.layer, transformer.layer, encoder.layers): set layers=0"
    )


def layer_count(backbone: nn.Module) -> int:
    """How many transformer layers ``backbone`` holds (see :func:`layer_list`)."""
    return len(getattr(*layer_list(backbone)))


def keep_layers(encoder: SentenceEncoder, kept: Sequence[int]) -> None:
    """Keep only the layers at ``kept`` (original order), in place; the config's layer count
    follows."""
    parent, name = layer_list(encoder.backbone)
    layers = getattr(parent, name)
    setattr(parent, name, nn.ModuleList([layers[i] for i in kept]))
    for key in _COUNT_KEYS:
        if hasattr(encoder.config, key):
            setattr(encoder.config, key, len(kept))


def _mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean())


def _embeddings(encoder: SentenceEncoder, batches: Sequence[dict[str, torch.Tensor]]) -> Any:
    with torch.inference_mode():
        return torch.cat([encoder(**batch) for batch in batches])


def choose_layers(
    encoder: SentenceEncoder, drop: int, batches: Sequence[dict[str, torch.Tensor]]
) -> tuple[list[int], list[dict[str, Any]]]:
    """Greedily pick ``drop`` layers to remove: at each step, the one whose skipping keeps the
    embeddings closest (mean cosine) to the unpruned encoder's on ``batches``.

    Returns:
        The original indices of the layers removed, in the order chosen, and one record per
        step: every candidate's cosine, and the cosine after the step's removal.

    Raises:
        ValueError: unless 0 <= ``drop`` < the number of layers.
    """
    parent, name = layer_list(encoder.backbone)
    layers = getattr(parent, name)
    total = len(layers)
    if not 0 <= drop < total:
        raise ValueError(f"can drop 0 to {total - 1} of {total} layers, not {drop}")
    reference = _embeddings(encoder, batches)
    kept, removed, steps = list(range(total)), [], []
    try:
        for _ in range(drop):
            cosines = {}
            for index in kept:
                trial = [i for i in kept if i != index]
                setattr(parent, name, nn.ModuleList([layers[i] for i in trial]))
                cosines[index] = _mean_cosine(_embeddings(encoder, batches), reference)
            best = max(cosines, key=lambda i: (cosines[i], i))  # ties: the later layer
            kept.remove(best)
            removed.append(best)
            steps.append({"removed": best, "cosine": cosines[best], "candidates": cosines})
    finally:
        setattr(parent, name, layers)
    return removed, steps
