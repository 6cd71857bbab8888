"""Mask losses of the DETR family (WRVOS eq. 19 uses 5 * dice + 2 * focal), per frame, averaged over frames.

Shapes: logits and targets [..., H, W] (e.g. [B, T, H, W]); valid bool [...] (e.g. [B, T]) selects the frames
that count. Each frame's loss is computed on its own pixels, then the mean over valid frames is returned.

Defined edge cases
- empty target frame: dice = 1 - 1 / (sum(sigmoid) + 1), which goes to 0 as the prediction empties (the +1
  smoothing of DETR/ReferFormer); focal is the plain per-pixel mean.
- no valid frame: the loss is 0 and stays connected to the graph (logits.sum() * 0), so a batch without a
  supervised frame contributes nothing; a method that needs the term must check `valid.any()` itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _frame_mean(per_frame: torch.Tensor, valid: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    valid = valid.to(torch.bool).expand_as(per_frame)
    if not valid.any():
        return logits.sum() * 0.0
    return per_frame[valid].mean()


def dice_per_frame(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 |p t| + s) / (|p| + |t| + s) per frame: [..., H, W] -> [...]."""
    p = logits.sigmoid().flatten(-2)
    t = targets.to(p.dtype).flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + smooth) / (p.sum(-1) + t.sum(-1) + smooth)


def focal_per_frame(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
                    ) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017), mean over the pixels of each frame: [..., H, W] -> [...].
    alpha < 0 disables the class weighting."""
    logits, t = torch.broadcast_tensors(logits, targets.to(logits.dtype))
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return _frame_mean(dice_per_frame(logits, targets), valid, logits)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    return _frame_mean(focal_per_frame(logits, targets, alpha, gamma), valid, logits)
