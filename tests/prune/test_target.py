"""The MACs-target search: coarse groups (few heavy units) no longer leave the target unreachable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimkit
from slimkit.errors import PruningTargetError


class ResidualStream(nn.Module):
    """A residual stream of ``stream`` channels read by two wide blocks, like a transformer's
    hidden width: one channel of the stream is 1/``stream`` of almost all the MACs."""

    def __init__(self, stream: int, hidden: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, stream, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(stream, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, stream, 1))
            for _ in range(2)
        )
        self.head = nn.Linear(stream, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        out: torch.Tensor = self.head(x.mean((2, 3)))
        return out


@pytest.mark.parametrize("stream", [3, 6])
def test_a_coarse_stream_still_reaches_the_target(stream: int) -> None:
    # With one shared ratio the stream goes from keeping ~2/3 to ~1/2 of itself at once and
    # the MACs jump from 54% to 46%: the search holds the stream and bisects the rest.
    torch.manual_seed(0)
    model, x = ResidualStream(stream).eval(), torch.randn(1, 1, 8, 8)
    pruned = slimkit.prune(model, slimkit.StructuredConfig(target_macs=0.5), example_inputs=x)
    fraction = slimkit.count_macs(pruned, x) / slimkit.count_macs(model, x)
    assert 0.475 <= fraction <= 0.5
    assert pruned.stem.out_channels > stream // 2  # the stream kept more, the blocks gave more
    assert pruned(x).shape == (1, 10)


def test_an_unreachable_target_is_still_refused() -> None:
    torch.manual_seed(0)
    model, x = ResidualStream(3).eval(), torch.randn(1, 1, 8, 8)
    with pytest.raises(PruningTargetError, match="cannot reach 1%"):
        slimkit.prune(model, slimkit.StructuredConfig(target_macs=0.01), example_inputs=x)


def test_the_search_holds_at_most_two_pruned_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    from slimkit.prune import _target

    held: list[int] = []
    original = _target._Search._release

    def counting(self: _target._Search, keep: object) -> None:
        original(self, keep)  # type: ignore[arg-type]
        held.append(sum(c.model is not _target.RELEASED for _, c in self.evaluated))

    monkeypatch.setattr(_target._Search, "_release", counting)
    torch.manual_seed(0)
    model, x = ResidualStream(6).eval(), torch.randn(1, 1, 8, 8)
    pruned = slimkit.prune(model, slimkit.StructuredConfig(target_macs=0.5), example_inputs=x)
    assert len(held) >= 4 and max(held) == 2  # many steps, never more than best + latest
    fraction = slimkit.count_macs(pruned, x) / slimkit.count_macs(model, x)
    assert 0.475 <= fraction <= 0.5  # the best one kept its model
