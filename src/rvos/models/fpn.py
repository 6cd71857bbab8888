"""FPN of SimRVOS (eq. 4): F_FPN = G_FPN(F_hat, C4, C3, C2), a mask feature at stride 4.

Top-down as in Lin et al.: each level adds a 1x1 lateral of C_l to the upsampled coarser level, then a 3x3
conv. With `language_dim`, every level is also modulated by the sentence (FiLM: x * (1 + gamma(s)) + beta(s) after
the lateral sum), so the language reaches the fine levels directly and not only through the stride-32 feature:
a light form of ReferFormer's cross-modal FPN, which WRVOS builds on. On the synthetic benchmark, where objects are
smaller than a stride-32 cell, this is what lets the mask feature separate same-category objects. Widths shrink towards the fine levels (e.g. 96, 64, 32) so the stride-4 convolutions stay cheap on a CPU;
a final 1x1 conv gives the `mask_dim` channels the dynamic filters read (eq. 5).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class LanguageFPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], top_dim: int, dims: tuple[int, int, int], mask_dim: int,
                 language_dim: int = 0):
        """in_channels: channels of C4, C3, C2; dims: widths at strides 16, 8, 4; language_dim: width of the
        sentence vector that modulates every level (0 = plain FPN, eq. 4 as written)."""
        super().__init__()
        self.film = nn.ModuleList(nn.Linear(language_dim, 2 * d) for d in dims) if language_dim else None
        if self.film is not None:
            for f in self.film:  # start as the plain FPN
                nn.init.zeros_(f.weight)
                nn.init.zeros_(f.bias)
        prev = (top_dim,) + tuple(dims[:-1])
        self.reduce = nn.ModuleList(nn.Conv2d(p, d, 1) for p, d in zip(prev, dims))
        self.lateral = nn.ModuleList(nn.Conv2d(c, d, 1) for c, d in zip(in_channels, dims))
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, d, 3, padding=1, bias=False), _gn(d), nn.ReLU(inplace=True)) for d in dims
        )
        self.out = nn.Conv2d(dims[-1], mask_dim, 1)

    def forward(self, top: torch.Tensor, c4: torch.Tensor, c3: torch.Tensor, c2: torch.Tensor,
                language: torch.Tensor | None = None) -> torch.Tensor:
        """top [N, D, H/32, W/32] (F_hat), language [N, language_dim] -> [N, mask_dim, H/4, W/4]."""
        x = top
        for k, (reduce, lateral, smooth, c) in enumerate(zip(self.reduce, self.lateral, self.smooth, (c4, c3, c2))):
            x = F.interpolate(reduce(x), size=c.shape[-2:], mode="nearest") + lateral(c)  # 1x1 before upsampling
            if self.film is not None:
                gamma, beta = self.film[k](language)[:, :, None, None].chunk(2, dim=1)  # [N, d, 1, 1] each
                x = x * (1 + gamma) + beta
            x = smooth(x)
        return self.out(x)
