"""Language-free object decoder: every object of a frame as a query with a mask, an objectness and an embedding.

The first half of rvos's object-centric model (`model.head="objects"`, see models/referring.py for the second):
- `PixelDecoder`: a plain top-down FPN over C5..C2 (no language) giving the stride-4 mask feature, plus the
  stride-32/16/8 levels projected to the query width as attention memories.
- `ObjectDecoder`: Mask2Former-style. Q learned queries; each layer cross-attends into one memory level (coarse to
  fine, round robin), with the attention of every query restricted to where its previous mask prediction is on
  (masked attention; a query whose mask is empty attends everywhere), then self-attention among the queries and an
  FFN. After every layer each query predicts an objectness logit and a mask (dot product of its mask embedding with
  the mask feature), so every layer can be supervised (deep supervision).

Nothing here reads the sentence: the objects of a frame are computed once and shared by every sentence, and what
a sentence refers to is decided over whole tracks (models/referring.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


def sine_tables(h: int, w: int, dim: int, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of `sine_positions`: per column [w, dim/2] (sin, cos of x) and per row [h, dim/2] (of y)."""
    freq = torch.pi * 2.0 ** torch.arange(dim // 4, device=device, dtype=dtype)  # [dim/4]
    xs = ((torch.arange(w, device=device, dtype=dtype) + 0.5) / w)[:, None] * freq
    ys = ((torch.arange(h, device=device, dtype=dtype) + 0.5) / h)[:, None] * freq
    return torch.cat([xs.sin(), xs.cos()], 1), torch.cat([ys.sin(), ys.cos()], 1)


def sine_positions(h: int, w: int, dim: int, device, dtype=torch.float32) -> torch.Tensor:
    """[h*w, dim] 2-D sine embedding of normalised cell centres (DETR), for any frame size: cell (i, j) (row-major)
    is [sin x f, cos x f, sin y f, cos y f] with f = pi 2^k, k < dim/4."""
    cols, rows = sine_tables(h, w, dim, device, dtype)
    return torch.cat([cols[None].expand(h, -1, -1), rows[:, None].expand(-1, w, -1)], -1).reshape(h * w, dim)


class PixelDecoder(nn.Module):
    """C2..C5 -> mask feature [N, mask_dim, H/4, W/4] and memories [stride 32, 16, 8], each [N, D, h_l, w_l]."""

    def __init__(self, in_channels: tuple[int, int, int, int], dim: int, dims: tuple[int, int, int], mask_dim: int):
        super().__init__()
        c2, c3, c4, c5 = in_channels
        self.top = nn.Sequential(nn.Conv2d(c5, dim, 1), _gn(dim))
        prev = (dim,) + tuple(dims[:-1])
        self.reduce = nn.ModuleList(nn.Conv2d(p, d, 1) for p, d in zip(prev, dims))
        self.lateral = nn.ModuleList(nn.Conv2d(c, d, 1) for c, d in zip((c4, c3, c2), dims))
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, d, 3, padding=1, bias=False), _gn(d), nn.ReLU(inplace=True)) for d in dims)
        self.memory_proj = nn.ModuleList(nn.Conv2d(d, dim, 1) for d in dims[:2])  # strides 16, 8 -> D
        self.out = nn.Conv2d(dims[-1], mask_dim, 1)

    def levels(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The maps before the last 1x1 convs: stride-4 [N, dims[-1], H/4, W/4] (before `out`) and [stride 32
        [N, D, ..], stride 16 [N, dims[0], ..], stride 8 [N, dims[1], ..]] (before `memory_proj`). The inference
        graph (export/objects_graph.py) applies those linear maps on the queries' side instead."""
        c2, c3, c4, c5 = feats
        x = self.top(c5)  # [N, D, H/32, W/32]
        maps = [x]
        for k, (reduce, lateral, smooth, c) in enumerate(zip(self.reduce, self.lateral, self.smooth, (c4, c3, c2))):
            x = smooth(F.interpolate(reduce(x), size=c.shape[-2:], mode="nearest") + lateral(c))
            if k < 2:
                maps.append(x)  # strides 16, 8
        return x, maps

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, maps = self.levels(feats)
        return self.out(x), [maps[0]] + [proj(m) for proj, m in zip(self.memory_proj, maps[1:])]


@dataclass
class FrameObjects:
    """What the object decoder gives for N frames and Q queries."""

    embed: torch.Tensor  # [N, Q, D] query states after the last layer
    logits: torch.Tensor  # [N, Q] objectness (is this query an object of the frame)
    masks: torch.Tensor  # [N, Q, H/4, W/4] mask logits
    aux: list[tuple[torch.Tensor, torch.Tensor]]  # per earlier layer (logits [N, Q], masks [N, Q, H/4, W/4])
    mask_features: torch.Tensor  # [N, C_m, H/4, W/4]


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, q, qpos, memory, mpos, attn_mask):
        a, _ = self.cross(q + qpos, memory + mpos, memory, attn_mask=attn_mask, need_weights=False)
        return self.after_cross(q, qpos, a)

    def after_cross(self, q, qpos, a):
        """q, qpos [N, Q, D], the cross-attention's output a [N, Q, D] -> the layer's output [N, Q, D]."""
        q = self.norms[0](q + a)
        a, _ = self.self_attn(q + qpos, q + qpos, q, need_weights=False)
        q = self.norms[1](q + a)
        return self.norms[2](q + self.ffn(q))


class ObjectDecoder(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int, int], dim: int = 128, num_queries: int = 8,
                 num_layers: int = 3, num_heads: int = 4, fpn_dims: tuple[int, int, int] = (96, 64, 32),
                 mask_dim: int = 32):
        super().__init__()
        self.pixel = PixelDecoder(in_channels, dim, fpn_dims, mask_dim)
        self.num_heads = num_heads
        self.query = nn.Embedding(num_queries, dim)
        self.query_pos = nn.Embedding(num_queries, dim)
        self.level_embed = nn.Embedding(3, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, num_heads, 2 * dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.objectness = nn.Linear(dim, 1)
        self.mask_embed = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, mask_dim))

    def predict(self, q: torch.Tensor, mask_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q [N, Q, D] -> (normed q, objectness [N, Q], mask logits [N, Q, H/4, W/4])."""
        q = self.norm(q)
        masks = torch.einsum("nqc,nchw->nqhw", self.mask_embed(q), mask_features)
        return q, self.objectness(q)[..., 0], masks

    def attention_mask(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """bool [N*heads, Q, h*w], True = not allowed: outside the query's predicted mask at this level."""
        small = F.interpolate(masks.detach(), size=size, mode="bilinear", align_corners=False)
        block = (small.sigmoid() < 0.5).flatten(2)  # [N, Q, h*w]
        block = block & ~block.all(-1, keepdim=True)  # an empty mask attends everywhere
        return block.repeat_interleave(self.num_heads, dim=0)

    def forward(self, feats: list[torch.Tensor]) -> FrameObjects:
        mask_features, memories = self.pixel(feats)
        n = mask_features.shape[0]
        mems, poss, sizes = [], [], []
        for lvl, m in enumerate(memories):
            h, w = m.shape[-2:]
            mems.append(m.flatten(2).transpose(1, 2))  # [N, h*w, D]
            poss.append((sine_positions(h, w, m.shape[1], m.device, m.dtype) + self.level_embed.weight[lvl])[None])
            sizes.append((h, w))
        q = self.query.weight[None].expand(n, -1, -1)
        qpos = self.query_pos.weight[None]
        aux = []
        _, logits, masks = self.predict(q, mask_features)
        for k, layer in enumerate(self.layers):
            lvl = k % len(mems)
            q = layer(q, qpos, mems[lvl], poss[lvl], self.attention_mask(masks, sizes[lvl]))
            if k < len(self.layers) - 1:
                _, logits, masks = self.predict(q, mask_features)
                aux.append((logits, masks))
        embed, logits, masks = self.predict(q, mask_features)
        return FrameObjects(embed, logits, masks, aux, mask_features)
