"""Which tracks a sentence refers to: a transformer over (track, frame) tokens and the sentence's words.

The second half of rvos's object-centric model (the first is models/objects.py + models/tracking.py). A sentence
such as "the small circle that stops", "the triangle left of the red square" or "the two blue things" is a
statement about whole tracks: what an object looks like, where it is relative to the others, how it moves over the
video. So the decision is taken over tracks, not pixels:

- `describe_tracks`: per track slot k and frame t a descriptor: the object query's embedding, the frame's C2/C3/C4
  features pooled under the query's soft mask (colour, texture and shape read where the object is), the mask's
  geometry (centre, spread, area) and its objectness; with `model.ref_colour`, also the frame's mean RGB under the
  mask (the pooled features hold colour only as the ImageNet backbone encodes it).
- `TrackReferrer`: the descriptors become tokens with a frame-position embedding. Each layer attends along time
  within a track (motion: where it goes, when it stops), across tracks within a frame (positions and relations:
  "leftmost", "above the ring"), and from every token to the words (the sentence decides what matters), then an
  FFN. A track's logit reads its tokens pooled over the frames where it is an object; a token's logit is the
  per-frame relevance ("the sentence holds for this track now").

Every sentence is decided independently per track (a sigmoid each), so a multi-object sentence selects several
tracks and a sentence about an absent object selects none: presence comes for free as the top track's score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

GEOMETRY = 6  # cx, cy, sx, sy, sqrt(area), objectness: the first channels of every descriptor
MOTION = 2  # dx, dy between consecutive (resampled) frames, appended by `with_motion`
COLOUR = 3  # mean R, G, B of the frame under the mask, minus 0.5 (`model.ref_colour`): after the pooled levels


@dataclass
class TrackInputs:
    tokens: torch.Tensor  # [B, K, T, F] descriptors with motion (see frame_descriptors, with_motion)
    alive: torch.Tensor  # [B, K, T] objectness probability of each track in each frame (0 on padding)
    frame_pos: torch.Tensor  # [B, T] position of each frame in its video, in [0, 1]
    valid: torch.Tensor  # bool [B, T], False on padding frames (videos of different length in one batch)


def _pool(feat: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """feat [N, C, H, W], prob [N, K, h, w] -> [N, K, C]: feature mean under each soft mask."""
    (h, w), (fh, fw) = prob.shape[-2:], feat.shape[-2:]
    if (h, w) == (fh, fw):
        p = prob
    elif h % fh == 0 and w % fw == 0 and h // fh == w // fw:  # the usual stride ratio: the same means, faster
        p = F.avg_pool2d(prob, h // fh)
    else:
        p = F.interpolate(prob, size=(fh, fw), mode="area")
    p = p.flatten(2)  # [N, K, HW]
    return torch.bmm(p, feat.flatten(2).transpose(1, 2)) / (p.sum(-1, keepdim=True) + 1e-4)


def frame_colour(frames: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """frames [N, 3, H, W] in [0, 1] (the model's input), mask probabilities [N, K, h, w] -> [N, K, COLOUR]: the
    mean colour under each mask, read from the frames averaged down to the masks' grid, minus 0.5."""
    (h, w), (fh, fw) = prob.shape[-2:], frames.shape[-2:]
    if fh % h == 0 and fw % w == 0 and fh // h == fw // w:
        small = F.avg_pool2d(frames.float(), fh // h) if fh != h else frames.float()
    else:
        small = F.interpolate(frames.float(), size=(h, w), mode="area")
    return _pool(small, prob) - 0.5


def frame_descriptors(embed: torch.Tensor, logits: torch.Tensor, masks: torch.Tensor, feats: list[torch.Tensor],
                      frames: torch.Tensor | None = None) -> torch.Tensor:
    """Per frame, in track order: embed [N, K, D], objectness logits [N, K], mask logits [N, K, h, w], pooled
    levels (e.g. C2, C3, C4) each [N, C_l, H_l, W_l], and optionally the input frames [N, 3, H, W] ->
    [N, K, GEOMETRY + D + sum C_l (+ COLOUR with frames)]. Frames are independent, so a streaming predictor
    computes this a window at a time."""
    n, k, h, w = masks.shape
    prob = masks.float().sigmoid()  # [N, K, h, w]
    ys = (torch.arange(h, device=masks.device, dtype=prob.dtype) + 0.5) / h
    xs = (torch.arange(w, device=masks.device, dtype=prob.dtype) + 0.5) / w
    mass = prob.sum((-2, -1)) + 1e-4  # [N, K]
    px, py = prob.sum(-2), prob.sum(-1)  # [N, K, w], [N, K, h]
    cx, cy = (px * xs).sum(-1) / mass, (py * ys).sum(-1) / mass
    sx = ((px * (xs - cx[..., None]) ** 2).sum(-1) / mass).clamp_min(0).sqrt()
    sy = ((py * (ys - cy[..., None]) ** 2).sum(-1) / mass).clamp_min(0).sqrt()
    area = prob.mean((-2, -1))
    geo = torch.stack([cx, cy, sx * 4, sy * 4, area.sqrt() * 4, logits.float().sigmoid()], -1)  # [N, K, 6]
    parts = [geo, embed.float()] + [_pool(f.float(), prob) for f in feats]
    if frames is not None:
        parts.append(frame_colour(frames, prob))
    return torch.cat(parts, -1)


def rescale_geometry(desc: torch.Tensor, fy: float, fx: float) -> torch.Tensor:
    """Geometry measured on a padded input -> measured on the frame: the frame is the top-left 1/fy x 1/fx of the
    padded grid (fy = padded height / frame height at the model's scale)."""
    if fy == 1.0 and fx == 1.0:
        return desc
    scale = torch.ones(desc.shape[-1], dtype=desc.dtype)
    scale[:5] = torch.tensor([fx, fy, fx, fy, math.sqrt(fx * fy)], dtype=desc.dtype)
    return desc * scale.to(desc.device)


def resample(desc: torch.Tensor, bins: int) -> torch.Tensor:
    """desc [T, K, F] -> [min(T, bins), K, F]: frames averaged into equal consecutive bins, for long videos."""
    t = desc.shape[0]
    if t <= bins:
        return desc
    edges = torch.linspace(0, t, bins + 1).round().long().tolist()
    return torch.stack([desc[a:max(b, a + 1)].mean(0) for a, b in zip(edges[:-1], edges[1:])])


def with_motion(desc: torch.Tensor, frames_per_step: float = 1.0) -> torch.Tensor:
    """desc [T, K, F] (centre in channels 0, 1) -> [K, T, F + MOTION] with the per-frame displacement of the
    centre since the previous step (0 at the first), scaled to about unit range."""
    c = desc[..., :2]
    d = torch.cat([torch.zeros_like(c[:1]), c[1:] - c[:-1]]) * (10.0 / frames_per_step)
    return torch.cat([desc, d], -1).transpose(0, 1)


def video_inputs(descs: list[torch.Tensor], bins: int, lengths: list[int] | None = None) -> TrackInputs:
    """Per video a [T_i, K, F] descriptor sequence -> one padded TrackInputs batch (each resampled to <= bins)."""
    seqs, pos = [], []
    for d in descs:
        n = d.shape[0]
        r = resample(d, bins)
        seqs.append(with_motion(r, n / r.shape[0]))  # [K, T', F']
        pos.append(torch.linspace(0, 1, r.shape[0]) if r.shape[0] > 1 else torch.zeros(1))
    b, k, f = len(seqs), seqs[0].shape[0], seqs[0].shape[-1]
    t = max(s.shape[1] for s in seqs)
    tokens = seqs[0].new_zeros(b, k, t, f)
    frame_pos = torch.zeros(b, t)
    valid = torch.zeros(b, t, dtype=torch.bool)
    for i, (s, p) in enumerate(zip(seqs, pos)):
        tokens[i, :, : s.shape[1]] = s
        frame_pos[i, : len(p)] = p
        valid[i, : len(p)] = True
    alive = tokens[..., 5] * valid[:, None]  # objectness channel, 0 on padding
    return TrackInputs(tokens, alive, frame_pos.to(tokens.device), valid.to(tokens.device))


def time_embedding(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """pos [B, T] in [0, 1] -> [B, T, dim] sine embedding."""
    freq = torch.exp(torch.arange(dim // 2, device=pos.device, dtype=pos.dtype) * (-math.log(100.0) / (dim // 2)))
    ang = pos[..., None] * freq * 2 * math.pi
    return torch.cat([ang.sin(), ang.cos()], -1)


class ReferrerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.time = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.objects = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.words = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        # (parameter names as without dropout: ffn.0 and ffn.2 are the linear layers)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Sequential(nn.ReLU(inplace=True), nn.Dropout(dropout)),
                                 nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))

    def forward(self, x: torch.Tensor, words: torch.Tensor, pad: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, K, T, D]; words [B, L, D]; pad bool [B, L] (True = padding); valid bool [B, T]."""
        b, k, t, d = x.shape
        y = x.reshape(b * k, t, d)
        time_pad = (~valid).repeat_interleave(k, dim=0)  # [B*K, T]
        y = self.norms[0](y + self.time(y, y, y, key_padding_mask=time_pad, need_weights=False)[0])  # within a track
        y = y.reshape(b, k, t, d).transpose(1, 2).reshape(b * t, k, d)
        y = self.norms[1](y + self.objects(y, y, y, need_weights=False)[0])  # across tracks, within a frame
        y = y.reshape(b, t, k, d).transpose(1, 2).reshape(b, k * t, d)
        y = self.norms[2](y + self.words(y, words, words, key_padding_mask=pad, need_weights=False)[0])
        y = self.norms[3](y + self.drop(self.ffn(y)))
        return y.reshape(b, k, t, d)


class TrackReferrer(nn.Module):
    def __init__(self, in_dim: int, text_dim: int, dim: int = 128, heads: int = 4, layers: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(in_dim, dim), nn.LayerNorm(dim))
        self.word_proj = nn.Sequential(nn.Linear(text_dim, dim), nn.LayerNorm(dim))
        self.sent_proj = nn.Sequential(nn.Linear(text_dim, dim), nn.LayerNorm(dim))
        self.time_proj = nn.Linear(dim, dim)
        self.layers = nn.ModuleList(ReferrerLayer(dim, heads, dropout) for _ in range(layers))
        self.track_head = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 1))
        self.frame_head = nn.Linear(dim, 1)

    def forward(self, inputs: TrackInputs, words: torch.Tensor, pad: torch.Tensor, sentence: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> track logits [B, K], relevance logits [B, K, T]."""
        x = self.inp(inputs.tokens)  # [B, K, T, D]
        d = x.shape[-1]
        x = x + self.time_proj(time_embedding(inputs.frame_pos, d))[:, None]
        w = self.word_proj(words)
        s = self.sent_proj(sentence)  # [B, D]
        for layer in self.layers:
            x = layer(x, w, pad, inputs.valid)
        alive = inputs.alive[..., None]  # [B, K, T, 1]
        pooled = (x * alive).sum(2) / (alive.sum(2) + 1e-3)  # [B, K, D]
        logits = self.track_head(torch.cat([pooled, pooled * s[:, None]], -1))[..., 0]
        return logits, self.frame_head(x)[..., 0]
