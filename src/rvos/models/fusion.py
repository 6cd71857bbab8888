"""Cross-modal fusion of SimRVOS (WRVOS paper, section III-B, eq. 1-2).

The top visual level C5 and the word features are projected to one width D, then
  F_hat = F + softmax(q(F) k(R)^T / sqrt(C)) v(R)     (eq. 1, language -> vision, A_L2V)
  R_hat = R + softmax(q(R) k(F)^T / sqrt(C)) v(F)     (eq. 2, vision -> language, A_V2L)
with multi-head attention and individual parameters for the two directions. A LayerNorm follows each residual
(post-norm, as the transformer layers the paper cites) to keep the two modalities on one scale.

With `fine_channels` (ModelConfig.fusion_stride=16) the visual tokens are at stride 16 instead: the projected C5,
upsampled, plus a projection of C4. A departure from the paper, for small objects: a linear probe on the frozen
EfficientNet-Lite0 features at 192x320 reads the synthetic shapes' category at 85% from C4 but 65% from C5
(benchmarks/feature_probe.py).

With `selection` (ModelConfig.selection, WSRVOS), models/selection.py amplifies the top visual tokens for the
sentence and the top words for the frame before eq. 1-2; `Fused.selection` then holds the gates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from rvos.errors import ConfigError


@dataclass
class Fused:
    visual: torch.Tensor  # [N, D, h, w], language-aware top-level feature F_hat (eq. 1)
    words: torch.Tensor  # [N, L, D], vision-enhanced words R_hat (eq. 2)
    pad_mask: torch.Tensor  # bool [N, L], True = padding
    sentence: torch.Tensor  # [N, D], projected sentence feature R^s
    pos: torch.Tensor  # [1, h*w, D], positional embedding of the visual tokens (for query decoders)
    plain: torch.Tensor  # [N, D, h, w], the projected visual tokens before eq. 1 (no language)
    selection: Optional[Any] = None  # models/selection.Selection when the fusion selects (WSRVOS), else None


class CrossModalFusion(nn.Module):
    def __init__(self, vis_channels: int, text_dim: int, dim: int = 128, num_heads: int = 4, fine_channels: int = 0,
                 selection: Optional[nn.Module] = None):
        super().__init__()
        self.selection = selection
        self.vis_proj = nn.Sequential(nn.Conv2d(vis_channels, dim, 1), nn.GroupNorm(8, dim))
        self.fine_proj = nn.Sequential(nn.Conv2d(fine_channels, dim, 1), nn.GroupNorm(8, dim)) if fine_channels else None
        self.word_proj = nn.Sequential(nn.Linear(text_dim, dim), nn.LayerNorm(dim))
        self.sent_proj = nn.Sequential(nn.Linear(text_dim, dim), nn.LayerNorm(dim))
        self.pos = nn.Sequential(nn.Linear(2, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
        self.l2v = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.v2l = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_v = nn.LayerNorm(dim)
        self.norm_w = nn.LayerNorm(dim)

    def project_sentence(self, sentence: torch.Tensor) -> torch.Tensor:
        return self.sent_proj(sentence)

    def positions(self, h: int, w: int, device) -> torch.Tensor:
        """[1, h*w, D] embedding of normalised (x, y) cell centres; works for any frame size."""
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(1, h * w, 2)
        return self.pos(grid)

    def visual_tokens(self, c5: torch.Tensor, c4: Optional[torch.Tensor]) -> torch.Tensor:
        """[N, D, h, w]: projected C5 (stride 32), or with `fine_proj` upsampled C5 + projected C4 (stride 16)."""
        f = self.vis_proj(c5)
        if self.fine_proj is None:
            return f
        if c4 is None:
            raise ConfigError("fusion at stride 16 (model.fusion_stride=16) needs the C4 features")
        return F.interpolate(f, size=c4.shape[-2:], mode="nearest") + self.fine_proj(c4)

    def forward(self, c5: torch.Tensor, words: torch.Tensor, pad_mask: torch.Tensor, sentence: torch.Tensor,
                c4: Optional[torch.Tensor] = None) -> Fused:
        """c5 [N, C5, h, w]; words [N, L, C_t]; pad_mask [N, L]; sentence [N, C_t] (N = B*T frames); c4 only for
        stride-16 fusion."""
        plain = self.visual_tokens(c5, c4)
        n, _, h, w = plain.shape
        f = plain.flatten(2).transpose(1, 2)  # [N, h*w, D]
        pos = self.positions(h, w, c5.device)
        r = self.word_proj(words)  # [N, L, D]
        selected = None
        if self.selection is not None:  # WSRVOS: amplify the relevant tokens and words before eq. 1-2
            f, r, selected = self.selection(f, r, pad_mask)
        # eq. 1: visual queries attend to words (padding words masked out)
        f_att, _ = self.l2v(f + pos, r, r, key_padding_mask=pad_mask, need_weights=False)
        f_hat = self.norm_v(f + f_att)
        # eq. 2: words attend to the (original) visual feature of their frame
        r_att, _ = self.v2l(r, f + pos, f, need_weights=False)
        r_hat = self.norm_w(r + r_att)
        visual = f_hat.transpose(1, 2).reshape(n, -1, h, w)  # [N, D, h, w]
        return Fused(visual, r_hat, pad_mask, self.sent_proj(sentence), pos, plain, selected)
