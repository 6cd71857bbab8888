"""Instance-aware expression scoring (WSRVOS): each query's mask is a proposal, scored against sentences.

A proposal's feature z is the visual tokens before any language (`Fused.plain`) pooled under the query's soft
mask. Its match with a sentence u is a scaled cosine:

  w      = area-downsample(sigmoid(mask logits of query q))           [N, Q, h, w]   (token grid)
  z_q    = LN(MLP(sum w F / sum w))                                   [N, Q, D]
  u      = LN(W R^s)                                                  [E, D]
  x_qe   = exp(log_scale) * cos(z_q, u_e) + bias                      the logit that proposal q shows sentence e

With ModelConfig.expression_scorer, RVOSModel replaces the head's query scores with x for the sentence it was
given (so the predictor picks the query whose region matches the sentence best) and returns z, so that a method
can score the same proposals against other sentences (hard negatives, other objects' expressions) without another
pass. z reads language-free features: the match cannot come from the sentence leaking into the pooled feature,
only from where the mask lies. The gradient of any loss on x reaches the mask logits through w: this is how an
expression classification loss teaches the masks where the object is.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


POOLS = ("sigmoid", "softmax")


class ExpressionScorer(nn.Module):
    """`pool`: how a mask weighs the tokens. "sigmoid": w = sigmoid(mask), the soft mask's average (above). Its
    gradient vanishes where the mask saturates, and it says nothing about the mask's level: a mask that floods the
    frame pools the frame's mean. "softmax": w = softmax over the frame's tokens of the (area-pooled) mask logits,
    a soft arg-max: the pooled feature is where the mask is highest, whatever its level, and the gradient does not
    vanish when the mask saturates."""

    def __init__(self, dim: int, init_scale: float = 10.0, init_bias: float = -5.0, pool: str = "sigmoid"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"expression scorer pool must be one of {POOLS}, got {pool!r}")
        self.pool = pool
        self.visual = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.text = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.bias = nn.Parameter(torch.tensor(init_bias))

    def proposals(self, mask_logits: torch.Tensor, plain: torch.Tensor) -> torch.Tensor:
        """mask_logits [N, Q, H4, W4] (stride 4), plain [N, D, h, w] language-free tokens -> z [N, Q, D]."""
        if self.pool == "softmax":
            x = mask_logits.float()
            if x.shape[-2:] != plain.shape[-2:]:
                x = F.adaptive_avg_pool2d(x, plain.shape[-2:])  # [N, Q, h, w]
            w = x.flatten(2).softmax(-1)  # [N, Q, h*w], sums to 1 over the frame
        else:
            w = torch.sigmoid(mask_logits.float())
            if w.shape[-2:] != plain.shape[-2:]:
                w = F.adaptive_avg_pool2d(w, plain.shape[-2:])  # [N, Q, h, w], share of each token under the mask
            w = w.flatten(2)  # [N, Q, h*w]
        pooled = torch.einsum("nqk,ndk->nqd", w, plain.flatten(2).float()) / (w.sum(-1, keepdim=True) + 1e-6)
        return self.visual(pooled.to(plain.dtype))

    def tokens(self, plain: torch.Tensor) -> torch.Tensor:
        """Every token as a proposal of its own: plain [N, D, h, w] -> [N, h*w, D] (a class activation map when
        scored against a sentence)."""
        return self.visual(plain.flatten(2).transpose(1, 2))

    def embed_text(self, sentence: torch.Tensor) -> torch.Tensor:
        """Projected sentence features R^s [E, D] -> u [E, D]."""
        return self.text(sentence)

    def logits(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Each row's proposals with its own sentence: z [..., Q, D], u [..., D] -> [..., Q]."""
        cos = (F.normalize(z, dim=-1) * F.normalize(u, dim=-1).unsqueeze(-2)).sum(-1)
        return self.log_scale.exp() * cos + self.bias

    def logits_all(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Every proposal with every sentence: z [..., Q, D], u [E, D] -> [..., Q, E]."""
        cos = F.normalize(z, dim=-1) @ F.normalize(u, dim=-1).T
        return self.log_scale.exp() * cos + self.bias
