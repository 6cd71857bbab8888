"""Distributed data parallel through torchrun: process-group setup from the environment (gloo on CPU, nccl on
GPU), the sharded, resumable sampler of clip items, and rank helpers. A single process is world size 1."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=info.rank, world_size=world)
    return info


def resolve_device(name: str, info_local_rank: int | None = None) -> torch.device:
    """`auto` -> cuda:LOCAL_RANK when a GPU exists, else cpu."""
    local = int(os.environ.get("LOCAL_RANK", "0")) if info_local_rank is None else info_local_rank
    if name == "auto":
        name = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    elif name == "cuda":
        name = f"cuda:{local}"
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


class ShardSampler(torch.utils.data.Sampler[int]):
    """Shuffled item order per epoch (seeded by (seed, epoch)), padded to a multiple of world_size * batch_size
    by wrapping around and sharded round-robin across ranks, like DistributedSampler with drop_last=False.
    `start` skips the first `start` items of this rank's shard (resuming mid-epoch)."""

    def __init__(self, num_items: int, info: DistInfo, batch_size: int, seed: int = 0, shuffle: bool = True):
        if num_items < 1:
            raise ValueError("no clip items to sample (empty dataset)")
        self.n, self.info, self.batch, self.seed, self.shuffle = num_items, info, batch_size, seed, shuffle
        self.epoch, self.start = 0, 0
        unit = info.world_size * batch_size
        self.per_rank = -(-num_items // unit) * batch_size  # items per rank per epoch, whole batches

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        idx = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        total = self.per_rank * self.info.world_size
        idx = np.resize(idx, total)  # wrap around to fill the last batch of every rank
        return [int(i) for i in idx[self.info.rank::self.info.world_size]]

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return self.per_rank - self.start

    @property
    def batches_per_epoch(self) -> int:
        return self.per_rank // self.batch
