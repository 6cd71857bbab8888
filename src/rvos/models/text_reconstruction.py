"""Text reconstruction of R2-VOS (section 4.3) and the fusion of e' into e (section 4.4, "FT" in Table 3).

V-T projection: a transformer decoder D_E whose one learnable text query e_0 reads the grounded feature f_early
of a clip and returns the reconstructed sentence embedding e' = D_E(f_early, e_0) in the (projected) text space.

What D_E reads (`ModelConfig.r2_reconstruct_from`):
- "early" (the paper): f_early. Every token of f_early has attended to the words (eq. 4), so it carries the sentence
  whatever the video shows, and e' can satisfy the cycle loss by copying the sentence. On the synthetic benchmark
  that is what it learnt: e' of one sentence on its own video and on an unrelated video had cosine 0.997, so the
  consensus head H(e, e') had nothing to compare and stayed at chance (BENCHMARKS.md, R2-VOS).
- "visual" (ours): the visual tokens from before any language attention, each scaled by a gate
  sigmoid(conv1x1(responses)) of the K kernel responses of eq. 6 (`ResponseGate`). The sentence reaches e' only
  through where the gate opens (one scalar per token). Measured on the synthetic benchmark after 1,200 steps:
  e' became a summary of the video (two sentences' e' on one video: cosine 0.999; one sentence's e' on two
  videos: 0.205), and the consensus head, comparing e with that summary, separated present from absent with
  AUC 0.81 instead of 0.50. On a second training seed the same model collapsed (e' nearly one vector, AUC 0.56).
- "visual_attn" (ours): the same language-free visual tokens, unscaled; the gate enters D_E's cross-attention as an
  additive log-gate bias on the attention logits (where to look, not how loud). With "visual" a closing gate shrinks
  every memory token, and the attended read-out with them, towards zero, which leaves e' the query's constant;
  here e' stays a convex combination of visual tokens whatever the gate does.

Fusion: the paper says only "we first fuse the reconstructed text embedding e' to text embedding e" before the
fused embedding is repeated into the N instance queries. Our reading: a residual, e_fused = LN(e + W e'), so that
an untrained W (zero-initialised) starts from the plain sentence embedding and the segmentation queries can
take the visual cues e' carries. `mode="concat"` uses LN(W [e; e']) instead.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from rvos.errors import ConfigError


class TextReconstruction(nn.Module):
    """f_early [B*T, D, h, w] -> e' [B, D]."""

    def __init__(self, dim: int, num_heads: int = 4, num_layers: int = 1, ffn_dim: Optional[int] = None,
                 dropout: float = 0.0):
        super().__init__()
        if dim % num_heads or num_layers < 1:
            raise ConfigError(f"text reconstruction needs dim % num_heads == 0 and num_layers >= 1, got dim={dim}, "
                              f"num_heads={num_heads}, num_layers={num_layers}")
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)  # e_0
        layer = nn.TransformerDecoderLayer(dim, num_heads, ffn_dim or 4 * dim, dropout=dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        self.norm = nn.LayerNorm(dim)

    def forward(self, f_early: torch.Tensor, batch: int, pos: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """f_early [B*T, D, h, w] (frame-major within a clip); pos [1, h*w, D] or None; bias [B*T, 1, h, w] or None,
        added to every head's attention logits on the tokens -> e' [B, D]."""
        bt, d, h, w = f_early.shape
        if bt % batch:
            raise ConfigError(f"text reconstruction got {bt} frames for a batch of {batch} clips")
        t = bt // batch
        memory = f_early.flatten(2).transpose(1, 2).reshape(batch, t * h * w, d)  # [B, T*h*w, D]
        if pos is not None:
            memory = memory + pos.repeat(1, t, 1)
        mask = None
        if bias is not None:
            mask = bias.reshape(batch, 1, t * h * w).repeat_interleave(self.num_heads, dim=0)  # [B*heads, 1, T*h*w]
        out = self.decoder(self.query.expand(batch, -1, -1), memory, memory_mask=mask)  # [B, 1, D]
        return self.norm(out[:, 0])


class ResponseGate(nn.Module):
    """Kernel responses [B*T, K, h, w] -> gate [B*T, 1, h, w] in (0, 1): where the grounding says the sentence is.
    mode "scale" multiplies the visual tokens by it; "bias" leaves them and returns log(gate) as attention bias."""

    def __init__(self, num_kernels: int, mode: str = "scale"):
        super().__init__()
        if mode not in ("scale", "bias"):
            raise ConfigError(f"response gate mode must be 'scale' or 'bias', got {mode!r}")
        self.mode = mode
        self.conv = nn.Conv2d(num_kernels, 1, 1)

    def forward(self, response: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(response))

    def read(self, visual: torch.Tensor, response: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """visual [B*T, D, h, w], response [B*T, K, h, w] -> (memory for D_E, attention bias [B*T, 1, h, w] or None)."""
        if self.mode == "scale":
            return visual * self(response), None
        return visual, F.logsigmoid(self.conv(response))  # log of the gate, computed stably


class TextFusion(nn.Module):
    """(e [B, D], e' [B, D]) -> fused sentence embedding [B, D] for the instance queries."""

    def __init__(self, dim: int, mode: str = "add"):
        super().__init__()
        if mode not in ("add", "concat"):
            raise ConfigError(f"text fusion mode must be 'add' or 'concat', got {mode!r}")
        self.mode = mode
        self.proj = nn.Linear(dim if mode == "add" else 2 * dim, dim)
        if mode == "add":  # start as the identity on e (up to LN): e' only enters once it helps
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
        self.norm = nn.LayerNorm(dim)

    def forward(self, e: torch.Tensor, e_rec: torch.Tensor) -> torch.Tensor:
        if e.shape != e_rec.shape:
            raise ConfigError(f"text fusion got e {tuple(e.shape)} and e' {tuple(e_rec.shape)}; expected equal [B, D]")
        if self.mode == "add":
            return self.norm(e + self.proj(e_rec))
        return self.norm(self.proj(torch.cat([e, e_rec], dim=-1)))
