"""Moment-guided dual-path propagation (MDP, TGL paper 003): the language-agnostic path.

TGL decouples "find the object the sentence refers to" from "track it": in the frames of the referred moment the
language path (the RVOS head) segments the object; in every other frame the object's mask is propagated from the
referred frames by space-time memory matching of visual features alone, with no text, so the object is tracked
through the whole video even where the sentence does not hold. The abstract gives no architecture; ours is a small
STM/XMem-style reader on the frozen backbone's levels (CODE-NOTES: SAM2-style memory, referred frames are written
to memory, propagated frames are not):

- `embed(C2..C5)` -> `PropFeatures`: E = conv3x3(P3 C3 + P2 avgpool(C2) + up(P4 C4)) at stride 8 and a fine
  feature F = relu(conv1x1(C2)) at stride 4. Visual features only: no sentence reaches this path.
- memory of a referred frame: keys k = L2-normalised W_k E; values = [W_v (E, m8), m8], where m8 is the frame's
  mask probability (stride 4) averaged down to stride 8. The last value channel is the mask itself, so reading the
  memory is label propagation plus learned value features.
- reading (`memory_read`): affinity A = k_mem^T q / tau (tau learnable, init `temperature`) plus a spatial prior
  -|p_q - p_m|^2 / (2 sigma_dt^2), sigma_dt = sigma (1 + |dt|) cells (dt = frames between query and memory frame),
  which keeps the match near where the object was when two objects look alike; softmax over all memory cells of
  all memory frames; read = values A.
- decoding: logits = gain * logit(read mask, upsampled to stride 4) + refine(up(dec(read, E)), F) (`dec` a 3x3
  convolution at stride 8, `refine` a 3x3 and a 1x1 convolution at stride 4, both `refine_dim` wide); the
  refinement's last convolution starts at zero, so an untrained module outputs the propagated mask itself.

Cost: the read is an [M*S, P] affinity per query frame (S = P = 960 cells at 192x320); training keeps it affordable
on a CPU by propagating a few frames per clip (rvos.methods.tgl `train_queries`).

Which frames are memory is decided outside: the method (rvos.methods.tgl) uses the clip's annotated referred
frames other than the query; the predictor (rvos.infer.mdp) the `memory` frames nearest in time among those whose
predicted relevance exceeds 0.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PropFeatures:
    embed: torch.Tensor  # [N, E, h8, w8], stride 8
    fine: torch.Tensor  # [N, F, h4, w4], stride 4

    def __getitem__(self, idx) -> "PropFeatures":
        return PropFeatures(self.embed[idx], self.fine[idx])


def cell_positions(h: int, w: int, device, dtype=torch.float32) -> torch.Tensor:
    """[h*w, 2] (x, y) cell indices of an h x w grid, row-major."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype),
                            indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)


def spatial_prior(h: int, w: int, dt: torch.Tensor, sigma: float) -> torch.Tensor:
    """Affinity bias [N, M*h*w, h*w] of query cells to the cells of M memory frames at time distances dt [N, M]:
    -d^2 / (2 sigma_dt^2), sigma_dt = sigma * (1 + |dt|), d in cells. A constant (no gradient)."""
    pos = cell_positions(h, w, dt.device)
    d2 = (pos[:, None] - pos[None]).pow(2).sum(-1)  # [hw, hw] (memory cell, query cell), exact integers
    coef = -0.5 / (sigma * (1.0 + dt.detach().abs().float())) ** 2  # [N, M]
    return (coef[..., None, None] * d2).flatten(1, 2)  # [N, M*hw, hw]


def memory_read(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, temperature: float | torch.Tensor,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Space-time memory read: query [N, K, P] (P query cells), keys [N, K, S] and values [N, V, S] (S memory
    cells), bias [N, S, P] added to the affinity (-inf removes a cell) -> [N, V, P]. Each query cell takes the
    softmax-weighted (over the S memory cells) average of the values."""
    affinity = torch.bmm(keys.transpose(1, 2), query / temperature)  # [N, S, P]; the scale on the small side
    if bias is not None:
        affinity = affinity + bias.to(affinity.dtype)
    return torch.bmm(values, affinity.softmax(1))  # [N, V, P]


class MaskPropagation(nn.Module):
    def __init__(self, channels: tuple[int, int, int], dim: int = 32, key_dim: int = 16, value_dim: int = 8,
                 fine_dim: int = 8, memory: int = 4, sigma: float = 3.0, temperature: float = 0.1,
                 refine_dim: int = 16):
        """channels: widths of C2, C3, C4. memory: frames read per query frame at inference (nearest in time)."""
        super().__init__()
        c2, c3, c4 = channels
        self.memory, self.sigma = memory, sigma
        self.p2, self.p3, self.p4 = nn.Conv2d(c2, dim, 1), nn.Conv2d(c3, dim, 1), nn.Conv2d(c4, dim, 1)
        self.mix = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(8 if dim % 8 == 0 else 1, dim),
                                 nn.ReLU(inplace=True))
        self.fine = nn.Sequential(nn.Conv2d(c2, fine_dim, 1), nn.ReLU(inplace=True))
        self.key = nn.Conv2d(dim, key_dim, 1)
        self.value = nn.Sequential(nn.Conv2d(dim + 1, value_dim, 3, padding=1), nn.ReLU(inplace=True))
        self.log_tau = nn.Parameter(torch.tensor(math.log(temperature)))
        self.gain = nn.Parameter(torch.tensor(1.0))
        self.dec = nn.Sequential(nn.Conv2d(value_dim + 1 + dim, refine_dim, 3, padding=1), nn.ReLU(inplace=True))
        self.refine = nn.Sequential(nn.Conv2d(refine_dim + fine_dim, refine_dim, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(refine_dim, 1, 1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_tau.exp()

    def embed(self, features: list[torch.Tensor]) -> PropFeatures:
        """C2..C5 (or C2..C4), each [N, C_l, H_l, W_l] -> PropFeatures (stride 8 and stride 4)."""
        c2, c3, c4 = features[:3]
        size = c3.shape[-2:]
        x = self.p3(c3) + self.p2(F.adaptive_avg_pool2d(c2, size)) + F.interpolate(self.p4(c4), size=size,
                                                                                     mode="bilinear", align_corners=False)
        return PropFeatures(self.mix(x), self.fine(c2))

    def keys(self, feats: PropFeatures) -> torch.Tensor:
        """[N, K, h8*w8], L2-normalised over K."""
        return F.normalize(self.key(feats.embed).flatten(2), dim=1)

    def encode_memory(self, feats: PropFeatures, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory of N frames from their features and mask probabilities [N, h4, w4] in [0, 1] ->
        keys [N, K, S], values [N, V+1, S] (S = h8*w8; the last value channel is the mask at stride 8)."""
        m8 = F.adaptive_avg_pool2d(masks[:, None].to(feats.embed.dtype), feats.embed.shape[-2:])  # [N, 1, h8, w8]
        v = torch.cat([self.value(torch.cat([feats.embed, m8], 1)), m8], 1)
        return self.keys(feats), v.flatten(2)

    def read(self, query: PropFeatures, mem_keys: torch.Tensor, mem_values: torch.Tensor, dt: torch.Tensor,
             valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """N query frames, each reading M memory frames: mem_keys [N, M, K, S], mem_values [N, M, V+1, S], dt [N, M]
        (query time - memory time), valid bool [N, M] (False: a padding slot) -> readout [N, V+1, h8, w8]."""
        n, m, k, s = mem_keys.shape
        h, w = query.embed.shape[-2:]
        with torch.no_grad():
            bias = spatial_prior(h, w, dt, self.sigma) if self.sigma > 0 else None
            if valid is not None and not bool(valid.all()):
                off = (~valid)[:, :, None, None].expand(n, m, s, 1).reshape(n, m * s, 1)
                bias = (bias if bias is not None else mem_keys.new_zeros(n, m * s, 1)).masked_fill(off, float("-inf"))
        keys = mem_keys.permute(0, 2, 1, 3).reshape(n, k, m * s)  # [N, K, M*S]
        values = mem_values.permute(0, 2, 1, 3).reshape(n, -1, m * s)  # [N, V+1, M*S]
        out = memory_read(self.keys(query), keys, values, self.temperature, bias)  # [N, V+1, hw]
        return out.reshape(n, -1, h, w)

    def decode(self, readout: torch.Tensor, query: PropFeatures) -> torch.Tensor:
        """readout [N, V+1, h8, w8] -> mask logits [N, h4, w4] at the fine feature's size."""
        size = query.fine.shape[-2:]
        mask = readout[:, -1:].clamp(1e-4, 1 - 1e-4)
        base = self.gain * torch.logit(F.interpolate(mask, size=size, mode="bilinear", align_corners=False))
        x = self.dec(torch.cat([readout, query.embed], 1))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return (base + self.refine(torch.cat([x, query.fine], 1)))[:, 0]

    def propagate(self, query: PropFeatures, mem_keys: torch.Tensor, mem_values: torch.Tensor, dt: torch.Tensor,
                  valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """read + decode: mask logits [N, h4, w4] of N query frames from their memories (see `read`)."""
        return self.decode(self.read(query, mem_keys, mem_values, dt, valid), query)


def nearest_memory(reference: torch.Tensor, count: int, exclude_self: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """For each frame of each clip, the `count` reference frames nearest in time (ties: the earlier frame), without
    the frame itself when `exclude_self`: reference bool [B, T] -> (indices [B, T, count] long, valid [B, T, count];
    invalid slots, where a clip has fewer reference frames, point at frame 0)."""
    b, t = reference.shape
    ar = torch.arange(t, device=reference.device)
    dist = (ar[:, None] - ar[None, :]).abs().float() + ar[None, :] * 1e-3  # [Tq, Tm]; earlier first on ties
    dist = dist[None].expand(b, t, t).clone()
    allowed = reference[:, None, :].expand(b, t, t).clone()
    if exclude_self:
        allowed &= ~torch.eye(t, dtype=torch.bool, device=reference.device)[None]
    dist[~allowed] = float("inf")
    k = min(count, t)
    d, idx = dist.topk(k, dim=-1, largest=False)  # [B, T, k]
    return idx, torch.isfinite(d)
