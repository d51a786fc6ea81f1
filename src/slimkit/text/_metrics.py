"""How closely a compressed encoder agrees with the original: embedding cosine and retrieval
(nearest-neighbour) agreement over a held-out set of sentences."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def neighbours(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of each row's ``k`` most cosine-similar other rows, most similar first.

    Raises:
        ValueError: if there are not more than ``k`` rows.
    """
    if embeddings.dim() != 2 or embeddings.shape[0] <= k:
        raise ValueError(
            f"need a (n, width) matrix with n > k={k} rows, got shape {tuple(embeddings.shape)}"
        )
    unit = F.normalize(embeddings.double(), dim=-1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(float("-inf"))  # a sentence is not its own neighbour
    return similarity.topk(k, dim=1).indices


def topk_overlap(reference: torch.Tensor, candidate: torch.Tensor, *, k: int = 10) -> float:
    """Mean fraction of each sentence's top-``k`` neighbours (among the same set) that the
    candidate's embeddings retrieve too: 1.0 means identical retrieval results."""
    _check_pair(reference, candidate)
    ref, cand = neighbours(reference, k), neighbours(candidate, k)
    shared = (ref.unsqueeze(2) == cand.unsqueeze(1)).any(dim=2).sum(dim=1)
    return float(shared.double().mean() / k)


def mean_cosine(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Mean cosine similarity between paired rows."""
    _check_pair(reference, candidate)
    return float(F.cosine_similarity(reference.double(), candidate.double(), dim=-1).mean())


def agreement(reference: torch.Tensor, candidate: torch.Tensor, *, k: int = 10) -> dict[str, float]:
    """Mean and 5th-percentile cosine, and top-``k`` neighbour overlap, of ``candidate``'s
    embeddings against ``reference``'s (same sentences, same order).

    Example:
        >>> agreement(original.encode(held_out), compressed.encode(held_out))
        {'mean_cosine': 0.97, 'p5_cosine': 0.93, 'top10_overlap': 0.84}
    """
    _check_pair(reference, candidate)
    cosine = F.cosine_similarity(reference.double(), candidate.double(), dim=-1)
    return {
        "mean_cosine": float(cosine.mean()),
        "p5_cosine": float(cosine.quantile(0.05)),
        f"top{k}_overlap": topk_overlap(reference, candidate, k=k),
    }


def _check_pair(reference: torch.Tensor, candidate: torch.Tensor) -> None:
    if reference.shape != candidate.shape:
        raise ValueError(
            f"embeddings of the same sentences must have the same shape, got "
            f"{tuple(reference.shape)} and {tuple(candidate.shape)}"
        )
