"""Linking per-frame object queries into tracks, online, with no training (MinVIS-style).

Each of K track slots keeps a memory: the running mean (momentum `momentum`) of the unit-normalised embeddings of
the queries it was given while they were objects. Frame by frame, the Q queries are assigned one-to-one to the
slots by scipy's linear_sum_assignment on cosine distance to the memories. A slot that has not yet held an object
takes its query's embedding as memory, so a slot can be claimed by an object entering the video later. Only the
previous state is kept, so a video of any length is tracked in constant memory.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


class QueryTracker:
    def __init__(self, momentum: float = 0.8, min_objectness: float = 0.5):
        self.momentum, self.min_objectness = momentum, min_objectness
        self.memory: Optional[torch.Tensor] = None  # [K, D] unit vectors
        self.seen: Optional[torch.Tensor] = None  # bool [K], the slot has held an object

    def step(self, embed: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """embed [Q, D], objectness logits [Q] of one frame -> perm [Q]: perm[k] = the query given to slot k."""
        e = F.normalize(embed.detach().float(), dim=-1)
        is_obj = logits.detach().float().sigmoid() > self.min_objectness
        if self.memory is None:
            perm = torch.arange(e.shape[0])
            self.memory, self.seen = e.clone(), is_obj.clone()
            return perm
        cost = (1 - self.memory @ e.T).cpu().numpy()  # [K, Q]
        rows, cols = linear_sum_assignment(cost)
        perm = torch.as_tensor(cols[rows.argsort()], dtype=torch.long)
        q, obj = e[perm], is_obj[perm]
        upd = F.normalize(self.momentum * self.memory + (1 - self.momentum) * q, dim=-1)
        new = torch.where(obj[:, None], upd, self.memory)
        self.memory = torch.where((~self.seen)[:, None], q, new)  # slots without an object follow their query
        self.seen = self.seen | obj
        return perm


def link_queries(embed: torch.Tensor, logits: torch.Tensor, momentum: float = 0.8, min_objectness: float = 0.5
                 ) -> torch.Tensor:
    """A whole video at once: embed [T, Q, D], logits [T, Q] -> perm [T, Q] (slot k of frame t is query perm[t, k])."""
    tracker = QueryTracker(momentum, min_objectness)
    return torch.stack([tracker.step(embed[t], logits[t]) for t in range(embed.shape[0])])


def gather_tracks(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """x [T, Q, ...] reordered into slots: out[t, k] = x[t, perm[t, k]]."""
    idx = perm.view(*perm.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, idx.to(x.device))
