"""Agreement metrics: cosine and top-k neighbour overlap."""

from __future__ import annotations

import pytest
import torch

from slimkit.text import agreement, mean_cosine, neighbours, topk_overlap


def test_identical_embeddings_agree_perfectly() -> None:
    x = torch.randn(30, 8)
    assert agreement(x, x * 3.0, k=5) == pytest.approx(
        {"mean_cosine": 1.0, "p5_cosine": 1.0, "top5_overlap": 1.0}
    )


def test_neighbours_exclude_the_query_itself() -> None:
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert neighbours(x, 1).flatten().tolist() == [1, 0, 3, 2]


def test_overlap_counts_shared_neighbours() -> None:
    reference = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    swapped = reference[[0, 2, 1, 3]]  # rows 1 and 2 trade places: neighbour lists change
    # reference top-1: 0→1, 1→0, 2→3, 3→2; swapped top-1: 0→2, 1→3, 2→0, 3→1: nothing shared
    assert topk_overlap(reference, swapped, k=1) == 0.0
    assert topk_overlap(reference, swapped, k=3) == pytest.approx(1.0)  # everyone else


def test_mean_cosine_and_shape_checks() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    assert mean_cosine(x, y) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same shape"):
        mean_cosine(x, y[:1])
    with pytest.raises(ValueError, match="n > k=2"):
        neighbours(x, 2)
