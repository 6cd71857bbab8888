"""Moment head (TGL, paper 003): per-frame relevance of the expression, "does the sentence hold at frame t".

TGL learns from temporal spans (MeViS-M) when each object is referred to; its dual-path propagation needs, at
inference, a per-frame decision between the language path and language-agnostic propagation. The abstract does
not say how relevance is predicted; this head is our design, read from the fused features every RVOS head has:

1. Sentence-guided attention pooling of the language-aware visual tokens F_hat of each frame (the fusion output,
   [B, T, D, h, w]): a = softmax_hw((W_q e) . (W_k F_hat) / sqrt(H)), pooled = sum a W_v F_hat.
2. Where the model looks: the attention's centroid (x, y) and spread, and, from the head's own masks (sigmoid of
   the mask logits averaged over queries with softmax(scores) weights; detached, so the relevance loss does not
   move the masks), the predicted object's area, centroid and peak probability.
   Motion cues: the central differences over the clip's frames of both centroids and of the area,
   (c_{t+1} - c_{t-1}) / 2 (one-sided at the ends), scaled by `VELOCITY_SCALE` (objects move about 1/100 of the
   frame a frame), so that "moving left" or "stops" can meet the sentence in the per-frame MLP.
3. Per frame: MLP([pooled, e, pooled * e, cues, motion cues]) -> [B, T, H].
4. Temporal context: `temporal_layers` residual 1-D convolutions (kernel 3, replicate padding) over the frames of
   the clip, so that motion ("moving left", "stops") can be read from how the centroids change between frames.
5. Linear -> relevance logit [B, T].

Frames of a clip (or of a predictor window) depend on their neighbours through step 4 only.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

N_CUES = 3 + 4  # attention centroid x, y and spread; mask area, centroid x, y and peak
N_MOTION = 5  # velocities of the attention centroid (x, y), the mask centroid (x, y) and the mask area
VELOCITY_SCALE = 20.0


def central_difference(x: torch.Tensor) -> torch.Tensor:
    """[B, T, C] -> [B, T, C]: (x_{t+1} - x_{t-1}) / 2 inside, one-sided differences at the ends, 0 when T = 1."""
    if x.shape[1] < 2:
        return torch.zeros_like(x)
    pad = torch.cat([2 * x[:, :1] - x[:, 1:2], x, 2 * x[:, -1:] - x[:, -2:-1]], 1)  # linear extrapolation
    return (pad[:, 2:] - pad[:, :-2]) / 2


def grid(h: int, w: int, device, dtype) -> torch.Tensor:
    """[h*w, 2] normalised (x, y) cell centres in [0, 1]."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(h * w, 2)


def mask_cues(mask_logits: torch.Tensor, scores: Optional[torch.Tensor]) -> torch.Tensor:
    """[B, T, Q, H, W] logits (+ [B, T, Q] scores) -> [B, T, 4]: area fraction, centroid x, y, peak probability of
    the score-weighted mask probability (centroid 0.5 where the mask is empty)."""
    p = mask_logits.float().sigmoid()
    if scores is not None and p.shape[2] > 1:
        p = (p * scores.float().softmax(-1)[..., None, None]).sum(2)  # [B, T, H, W]
    else:
        p = p[:, :, 0]
    b, t, h, w = p.shape
    flat = p.reshape(b, t, h * w)
    mass = flat.sum(-1, keepdim=True)  # [B, T, 1]
    xy = grid(h, w, p.device, p.dtype)
    centre = (flat @ xy + 0.5 * 1e-3) / (mass + 1e-3)  # [B, T, 2]
    return torch.cat([mass / (h * w), centre, flat.amax(-1, keepdim=True)], -1)


class MomentHead(nn.Module):
    def __init__(self, dim: int, hidden: int = 64, temporal_layers: int = 2):
        super().__init__()
        self.hidden = hidden
        self.q = nn.Linear(dim, hidden)
        self.k = nn.Conv2d(dim, hidden, 1)
        self.v = nn.Conv2d(dim, hidden, 1)
        self.sent = nn.Linear(dim, hidden)
        self.frame = nn.Sequential(nn.Linear(3 * hidden + N_CUES + N_MOTION, hidden), nn.ReLU(inplace=True),
                                   nn.Linear(hidden, hidden))
        self.temporal = nn.ModuleList(nn.Conv1d(hidden, hidden, 3) for _ in range(temporal_layers))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, visual: torch.Tensor, sentence: torch.Tensor, mask_logits: Optional[torch.Tensor] = None,
                scores: Optional[torch.Tensor] = None) -> torch.Tensor:
        """visual [B, T, D, h, w] (fused, language-aware); sentence [B, D]; mask_logits [B, T, Q, H, W] and scores
        [B, T, Q] of the head (optional: zeros as cues without them) -> relevance logits [B, T]."""
        b, t, d, h, w = visual.shape
        x = visual.flatten(0, 1)  # [B*T, D, h, w]
        e = sentence.repeat_interleave(t, dim=0)  # [B*T, D]
        k = self.k(x).flatten(2)  # [B*T, H, hw]
        att = torch.einsum("nc,nck->nk", self.q(e), k).div(self.hidden ** 0.5).softmax(-1)  # [B*T, hw]
        pooled = torch.einsum("nk,nck->nc", att, self.v(x).flatten(2))  # [B*T, H]
        xy = grid(h, w, x.device, att.dtype)
        centre = att @ xy  # [B*T, 2]
        spread = (att * ((xy[None] - centre[:, None]) ** 2).sum(-1)).sum(-1, keepdim=True).sqrt()
        if mask_logits is not None:
            cues = mask_cues(mask_logits.detach(), None if scores is None else scores.detach()).flatten(0, 1)
        else:
            cues = att.new_zeros(b * t, 4)
        cues = cues.to(att.dtype)
        track = torch.cat([centre, cues[:, 1:3], cues[:, :1]], -1).reshape(b, t, N_MOTION)  # [B, T, 5]
        motion = (VELOCITY_SCALE * central_difference(track)).reshape(b * t, N_MOTION)
        s = self.sent(e)
        f = self.frame(torch.cat([pooled, s, pooled * s, centre, spread, cues, motion], -1))  # [B*T, H]
        f = f.reshape(b, t, self.hidden).transpose(1, 2)  # [B, H, T]
        for conv in self.temporal:
            f = f + F.relu(conv(F.pad(f, (1, 1), mode="replicate")))
        f = self.norm(f.transpose(1, 2))  # [B, T, H]
        return self.out(f)[..., 0]  # [B, T]
