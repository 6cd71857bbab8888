"""Distributed data parallel with 2 CPU processes (gloo): equal parameters, only rank 0 writes; sharding."""
import socket

import pytest
import torch
import torch.multiprocessing as mp

from rvos.train.distributed import DistInfo, ShardSampler
from train_helpers import ddp_worker


def test_shard_sampler_splits_and_pads():
    a = ShardSampler(7, DistInfo(0, 2), batch_size=2, seed=3)
    b = ShardSampler(7, DistInfo(1, 2), batch_size=2, seed=3)
    ia, ib = a.order(), b.order()
    assert len(ia) == len(ib) == 4 and a.batches_per_epoch == 2
    assert set(ia) | set(ib) == set(range(7)) and len(set(ia) & set(ib)) <= 1  # one item repeated to pad
    a.set_epoch(1)
    assert a.order() != ia
    a.set_epoch(1, start=2)
    assert list(a) == a.order()[2:] and len(a) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp(tmp_path):
    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    p0, p1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.allclose(p0[k], p1[k], atol=1e-6), k
    assert (tmp_path / "out0" / "checkpoints" / "last.pt").is_file() and (tmp_path / "out0" / "metrics.jsonl").is_file()
    assert not (tmp_path / "out1").exists() or not any((tmp_path / "out1").rglob("*"))
