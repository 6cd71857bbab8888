"""Temporal context over a clip's language-aware top-level tokens (optional; ModelConfig.temporal_layers).

SimRVOS decodes every frame on its own, so a sentence about motion ("the circle moving left") or one that holds only
during a span cannot tell two same-looking objects apart from a single frame. This module lets the T x h x w tokens
of F_hat (the fusion output, stride 32) of one clip attend to each other: a few transformer encoder layers (post-norm,
like the fusion) over the clip's tokens plus the spatial embedding of the fusion and a learned frame-index embedding.
Its output replaces F_hat, so the FPN (and the multi head's query decoder) see clip-aware features. Clips never mix:
attention runs within each of the B clips.

The frame index is the position within the clip (0..T-1), so training clips (T=5) and the predictor's windows (T=8)
use the same embedding rows; `max_frames` bounds T.
"""
from __future__ import annotations

import torch
from torch import nn

from rvos.errors import ConfigError


class TemporalContext(nn.Module):
    def __init__(self, dim: int, num_heads: int = 4, num_layers: int = 1, max_frames: int = 32):
        super().__init__()
        if num_layers < 1 or max_frames < 1:
            raise ConfigError(f"TemporalContext needs num_layers >= 1 and max_frames >= 1, got {num_layers}, {max_frames}")
        self.max_frames = max_frames
        self.frame_embed = nn.Embedding(max_frames, dim)
        nn.init.normal_(self.frame_embed.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, visual: torch.Tensor, pos: torch.Tensor, B: int, T: int) -> torch.Tensor:
        """visual [B*T, D, h, w] (frame-major within a clip); pos [1, h*w, D] -> [B*T, D, h, w]."""
        n, d, h, w = visual.shape
        if n != B * T:
            raise ConfigError(f"TemporalContext got {n} frames for B={B}, T={T}")
        if T > self.max_frames:
            raise ConfigError(f"TemporalContext got clips of {T} frames; model.temporal_max_frames={self.max_frames}")
        x = visual.flatten(2).transpose(1, 2).reshape(B, T, h * w, d)  # [B, T, hw, D]
        frame = self.frame_embed.weight[:T].to(x.dtype)[None, :, None]  # [1, T, 1, D]
        tokens = (x + pos.to(x.dtype)[:, None] + frame).reshape(B, T * h * w, d)  # [B, T*hw, D]
        out = self.encoder(tokens)  # attention within each clip only
        return out.reshape(B, T, h * w, d).reshape(n, h * w, d).transpose(1, 2).reshape(n, d, h, w)
