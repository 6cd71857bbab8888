"""ObjectsGraph: the inference form of the object decoder (models/objects.py), the same function rewritten so that
nothing of size Q x D x (h w) or D x D x (h w) is computed over a whole memory map.

The training form projects every memory cell to keys and values (two D x D maps per cell and layer) and the
stride-16/8 maps and the stride-4 mask feature through 1x1 convs first. With Q = 8 queries and H heads, all of
these are cheaper on the queries' side, by linearity (per layer, one level's map x [c, h w], its 1x1 conv W, b
(identity for stride 32), positions p = sine + level embedding):

- keys: softmax over cells of q_h Wk_h^T (W x + b + p) + const = softmax of g_h (W x) + g_h p with
  g_h = q_h Wk_h^T / sqrt(d) [H Q, D]: the per-query constants (key bias, b, the level embedding) cancel;
- positions: p is separable (models/objects.sine_tables), so g_h p is a row term plus a column term;
- values: A_h (W x + b) Wv_h^T + bv_h = ((A_h x) W^T + b) Wv_h^T + bv_h, rows of A_h summing to 1;
- masked attention: the mask at a level's size is bilinear(mask feature) . e = (bilinear x4) . (Wo^T e) + bo . e
  (bilinear weights sum to 1), one mask for all heads; the full-size masks are computed once, at the end.

Same outputs as ObjectDecoder.forward up to float rounding (tests/export/test_objects_graph.py); its deep
supervision outputs (aux) are not computed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rvos.models.objects import ObjectDecoder, sine_tables


class ObjectsGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.objects: ObjectDecoder = model.objects

    def forward(self, c2, c3, c4, c5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """c_l [N, C_l, h_l, w_l] -> embed [N, Q, D], objectness logits [N, Q], mask logits [N, Q, H/4, W/4]."""
        dec = self.objects
        x4, maps = dec.pixel.levels([c2, c3, c4, c5])  # [N, c_4, H/4, W/4]; strides 32, 16, 8: [N, c_l, h_l, w_l]
        projs = [None] + list(dec.pixel.memory_proj)
        small = [F.interpolate(x4, size=m.shape[-2:], mode="bilinear", align_corners=False) for m in maps]
        n = x4.shape[0]
        q = dec.query.weight[None].expand(n, -1, -1)  # [N, Q, D]
        qpos = dec.query_pos.weight[None]
        for k, layer in enumerate(dec.layers):
            lvl = k % len(maps)
            block = self.blocked(q, small[lvl])  # [N, 1, Q, h w]
            a = self.cross(layer.cross, q + qpos, maps[lvl], projs[lvl], block)
            q = layer.after_cross(q, qpos, a)
        embed, logits, masks = self.predict(q, x4)
        return embed, logits, masks

    def mask_weights(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q [N, Q, D] (before the final norm) -> normed q [N, Q, D] and the mask as a map of x4: weights
        [N, Q, c_4] and bias [N, Q] (mask = weights . x4 + bias, i.e. out(x4) . mask_embed(q))."""
        dec = self.objects
        q = dec.norm(q)
        e = dec.mask_embed(q)  # [N, Q, C_m]
        out = dec.pixel.out
        return q, e @ out.weight[:, :, 0, 0], e @ out.bias

    def predict(self, q: torch.Tensor, x4: torch.Tensor):
        q, wm, bm = self.mask_weights(q)
        masks = torch.einsum("nqc,nchw->nqhw", wm, x4) + bm[..., None, None]
        return q, self.objects.objectness(q)[..., 0], masks

    def blocked(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """bool [N, 1, Q, h w], True = not attended: outside the query's mask at this size (an empty mask attends
        everywhere), as ObjectDecoder.attention_mask."""
        _, wm, bm = self.mask_weights(q)
        block = (torch.einsum("nqc,nchw->nqhw", wm, x).flatten(2) + bm[..., None]) < 0  # sigmoid < 0.5
        return (block & ~block.all(-1, keepdim=True))[:, None]

    def cross(self, attn: nn.MultiheadAttention, query: torch.Tensor, x: torch.Tensor, proj, block: torch.Tensor
              ) -> torch.Tensor:
        """query [N, Q, D] (with its positions), a level's map x [N, c, h, w] before its 1x1 conv `proj` (None:
        none), block [N, 1, Q, h w] -> the cross-attention output [N, Q, D] of attn over proj(x) + positions."""
        n, nq, dim = query.shape
        heads, d = attn.num_heads, dim // attn.num_heads
        c, h, w = x.shape[1:]
        wq, wk, wv = attn.in_proj_weight.chunk(3)  # [D, D] each
        bq, _, bv = attn.in_proj_bias.chunk(3)
        qh = (query @ wq.T + bq).view(n, nq, heads, d).transpose(1, 2)  # [N, H, Q, d]
        g = qh @ wk.view(heads, d, dim) / d ** 0.5  # [N, H, Q, D]: the query in memory space
        cols, rows = sine_tables(h, w, dim, x.device, x.dtype)  # [w, D/2], [h, D/2]
        pos = (g[..., dim // 2:] @ rows.T)[..., :, None] + (g[..., :dim // 2] @ cols.T)[..., None, :]  # [N, H, Q, h, w]
        gx = g if proj is None else g @ proj.weight[:, :, 0, 0]  # [N, H, Q, c]
        flat = x.flatten(2)  # [N, c, h w]
        scores = (gx.reshape(n, heads * nq, c) @ flat).view(n, heads, nq, h * w) + pos.reshape(n, heads, nq, h * w)
        attn_w = scores.masked_fill(block, float("-inf")).softmax(-1)  # [N, H, Q, h w]
        r = (attn_w.reshape(n, heads * nq, h * w) @ flat.transpose(1, 2)).view(n, heads, nq, c)  # [N, H, Q, c]
        if proj is not None:
            r = r @ proj.weight[:, :, 0, 0].T + proj.bias  # [N, H, Q, D]: the attended memory
        v = (r @ wv.view(heads, d, dim).transpose(1, 2)) + bv.view(heads, 1, d)  # [N, H, Q, d]
        return attn.out_proj(v.transpose(1, 2).reshape(n, nq, dim))
