"""Two gloo ranks training data-parallel reach the single-process result."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

import slimkit
from slimkit.testing import TinyConvNet, fashion_mnist_slice

pytestmark = pytest.mark.distributed
# SGD without momentum state differences and a BatchNorm-free model: the two runs must agree
# up to the order of float summations.
CFG = slimkit.TrainConfig(epochs=2, lr=0.05, optimizer="sgd", batch_size=64, seed=3)


def _train(out: Path) -> None:
    torch.set_num_threads(1)
    splits = fashion_mnist_slice(limit_train=512, limit_eval=128)
    model = TinyConvNet(seed=1)
    seen = [0]

    def counting_loss(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen[0] += len(y)
        return torch.nn.functional.cross_entropy(m(x), y)

    slimkit.train(model, splits, CFG, progress=False, loss_fn=counting_loss)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    out.with_name(f"{out.stem}-rank{rank}.seen").write_text(str(seen[0]))
    if rank == 0:
        save_file(model.state_dict(), str(out))


def _rank(rank: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        _train(out)
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    _train(tmp_path / "single.safetensors")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, tmp_path / "ddp.safetensors"), nprocs=2, join=True)
    # Each rank trained on its half of every batch.
    assert (tmp_path / "single-rank0.seen").read_text() == str(2 * 512)
    for rank in (0, 1):
        assert (tmp_path / f"ddp-rank{rank}.seen").read_text() == str(512)
    single = load_file(str(tmp_path / "single.safetensors"))
    ddp = load_file(str(tmp_path / "ddp.safetensors"))
    for name, value in single.items():
        assert not torch.equal(value, TinyConvNet(seed=1).state_dict()[name]), "it trained"
        torch.testing.assert_close(ddp[name], value, atol=1e-5, rtol=1e-4, msg=name)
