"""Positive prediction fusion (WSRVOS): the masks predicted for the P positives of one object, fused by agreement
into a pseudo-mask of confident pixels only, which then supervises segmentation with Dice + Focal.

Each positive k gives a map p_k: probabilities (the chosen query's sigmoid), or with `normalize` any scores (WSRVOS
passes logits). With `normalize`, each map is rescaled per frame to n_k = (p_k - min) / (max - min), as class
activation maps are before thresholding, so a map whose values are still low (or saturated) everywhere, early in
training, still says where it is most confident; a map flatter than `min_contrast` (max - min) abstains in that
frame (it says nothing about where the object is). A pixel is

  foreground   when the positives voting n_k >= fg carry at least `agree` of the weight,
  background   when the positives voting n_k <= bg carry at least `agree` of the weight,
  ignored      otherwise (no agreement: left out of both losses).

`agree` = 1 asks every positive to agree (an abstaining positive blocks agreement); weights are per positive
(uniform by default).
"""
from __future__ import annotations

from typing import Optional

import torch

from rvos.losses.mask import focal_per_frame


def fuse_positives(probs: torch.Tensor, weights: Optional[torch.Tensor] = None, fg: float = 0.6, bg: float = 0.2,
                   agree: float = 1.0, normalize: bool = True, min_contrast: float = 0.1
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """probs [K, ..., H, W] (K positives of one object; in [0, 1] unless normalize), weights [K] -> (target [..., H, W] in {0, 1},
    confident bool [..., H, W]). No gradient flows into the pseudo-mask."""
    p = probs.detach().float()
    votes = torch.ones_like(p)  # 1 where positive k votes in that frame
    if normalize:
        lo = p.flatten(-2).amin(-1)[..., None, None]
        span = p.flatten(-2).amax(-1)[..., None, None] - lo
        p = (p - lo) / span.clamp(min=1e-6)
        votes = (span >= min_contrast).float().expand_as(p)
    k = p.shape[0]
    w = torch.ones(k, device=p.device) if weights is None else weights.detach().float().to(p.device)
    w = (w / w.sum().clamp(min=1e-12)).reshape(k, *([1] * (p.dim() - 1)))
    fg_vote = ((p >= fg).float() * votes * w).sum(0)
    bg_vote = ((p <= bg).float() * votes * w).sum(0)
    eps = 1e-6  # votes are sums of floats: 1.0 may come out as 0.9999999
    target = fg_vote >= agree - eps
    confident = target | (bg_vote >= agree - eps)
    return target.float(), confident


def confident_dice(logits: torch.Tensor, target: torch.Tensor, confident: torch.Tensor,
                   smooth: float = 1.0) -> torch.Tensor:
    """Dice loss per frame over the confident pixels only: [..., H, W] -> [...]."""
    c = confident.to(logits.dtype).flatten(-2)
    p = logits.sigmoid().flatten(-2) * c
    t = target.to(logits.dtype).flatten(-2) * c
    return 1 - (2 * (p * t).sum(-1) + smooth) / (p.sum(-1) + t.sum(-1) + smooth)


def confident_focal(logits: torch.Tensor, target: torch.Tensor, confident: torch.Tensor, alpha: float = 0.25,
                    gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss per frame, mean over the confident pixels: [..., H, W] -> [...] (0 where none is)."""
    c = confident.to(logits.dtype)
    per_pixel = focal_per_frame(logits[..., None, None], target.to(logits.dtype)[..., None, None], alpha, gamma)  # [..., H, W]
    return (per_pixel * c).flatten(-2).sum(-1) / c.flatten(-2).sum(-1).clamp(min=1.0)
