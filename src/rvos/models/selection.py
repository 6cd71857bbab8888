"""Bidirectional visual-language feature selection (WSRVOS, "multimodal feature selection and interaction").

Before the cross-modal interaction (eq. 1-2 of models/fusion.py), keep the visual tokens most relevant to the
sentence and the words most relevant to what was selected in the frame:

  s   = mean over real words of W_s r                   the sentence, as seen by the selection   [N, D]
  a_v = cos(W_v f_i, s)                                  relevance of each visual token            [N, h*w]
  V   = top-k_v tokens by a_v                            (k_v = `topk_visual`)
  c   = mean of f_i over V                               what the selection sees in the frame      [N, D]
  a_w = cos(W_w r_j, W_c c)                              relevance of each real word               [N, L]
  W   = top-k_w real words by a_w                        (k_w = `topk_words`)
  f_i <- f_i (1 + g_i),  r_j <- r_j (1 + g_j)            selected tokens and words are amplified

as the public code does it (selected tokens "added back to themselves"). There, the top-k gate is hard and the
selection projections get no gradient. Here the gate is a straight-through top-k: its forward value is the hard
0/1 selection, its gradient that of sigmoid(a / temperature), so W_s, W_v, W_w and W_c are trained by the losses
downstream. Each frame selects on its own (the public code averages c over the clip's frames), so frames stay
independent and the predictor can still run one frame at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Selection:
    visual: torch.Tensor  # [N, h*w] gate values (hard 0/1 forward, straight-through gradient)
    words: torch.Tensor  # [N, L] gate values; 0 on padding
    visual_score: torch.Tensor  # [N, h*w] a_v (cosine)
    word_score: torch.Tensor  # [N, L] a_w (cosine; -inf on padding)


def straight_through_topk(score: torch.Tensor, k: int, temperature: float, valid: torch.Tensor | None = None
                          ) -> torch.Tensor:
    """[N, M] scores -> [N, M] gates: forward 1 on the k highest (valid) entries and 0 elsewhere, backward the
    gradient of sigmoid(score / temperature)."""
    masked = score if valid is None else score.masked_fill(~valid, float("-inf"))
    k = max(1, min(k, score.shape[-1]))
    hard = torch.zeros_like(score).scatter_(-1, masked.topk(k, dim=-1).indices, 1.0)
    if valid is not None:
        hard = hard * valid.to(hard.dtype)  # fewer than k real words: padding is never selected
    soft = torch.sigmoid(score / temperature)
    if valid is not None:
        soft = soft * valid.to(soft.dtype)
    return hard + soft - soft.detach()


class BidirectionalSelection(nn.Module):
    def __init__(self, dim: int, topk_visual: int = 10, topk_words: int = 10, temperature: float = 0.1):
        super().__init__()
        self.topk_visual, self.topk_words, self.temperature = topk_visual, topk_words, temperature
        self.sent = nn.Linear(dim, dim)  # W_s
        self.vis = nn.Linear(dim, dim)  # W_v
        self.word = nn.Linear(dim, dim)  # W_w
        self.ctx = nn.Linear(dim, dim)  # W_c

    def forward(self, f: torch.Tensor, r: torch.Tensor, pad_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, Selection]:
        """f [N, h*w, D] visual tokens, r [N, L, D] words, pad_mask bool [N, L] (True = padding) ->
        (selected f, selected r, Selection)."""
        real = (~pad_mask).to(r.dtype)[..., None]  # [N, L, 1]
        s = (self.sent(r) * real).sum(1) / real.sum(1).clamp(min=1.0)  # [N, D]
        a_v = F.cosine_similarity(self.vis(f), s[:, None], dim=-1)  # [N, h*w]
        g_v = straight_through_topk(a_v, self.topk_visual, self.temperature)
        hard_v = g_v.detach().round()
        c = (f * hard_v[..., None]).sum(1) / hard_v.sum(1, keepdim=True).clamp(min=1.0)  # [N, D]
        a_w = F.cosine_similarity(self.word(r), self.ctx(c)[:, None], dim=-1)  # [N, L]
        g_w = straight_through_topk(a_w, self.topk_words, self.temperature, valid=~pad_mask)
        f = f * (1.0 + g_v[..., None])
        r = r * (1.0 + g_w[..., None])
        return f, r, Selection(g_v, g_w, a_v, a_w.masked_fill(pad_mask, float("-inf")))
