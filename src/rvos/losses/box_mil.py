"""Box MIL loss in the projection form of BoxInst (WRVOS eq. 9 and eq. 20, "w/o mask").

Every horizontal and every vertical line of the frame is a bag of pixels. A line that crosses the box holds at
least one foreground pixel (a positive bag); a line that misses the box holds none (a negative bag). The bag
score is the max of the predicted probability along the line, so the row-wise and column-wise maxima of the
prediction are compared with the row-wise and column-wise maxima of the box mask (its projections on the y and x
axes) by a dice loss; the loss of a frame is dice_x + dice_y.

Dice: the +1-smoothed dice of `rvos.losses.mask.dice_per_frame` (DETR/ReferFormer), not BoxInst's
squared-denominator dice with eps 1e-5: with an empty box (object annotated as not visible) BoxInst's form is the
constant 1 with no gradient, while the smoothed form is 1 - 1 / (sum of line maxima + 1), which pushes every
line (all negative bags) towards 0. max(sigmoid(x)) = sigmoid(max(x)), so projections are taken on the logits.

Rasterisation at the logit resolution (h, w): pixel column j covers [j / w, (j + 1) / w) of the normalised frame.
A box (x0, y0, x1, y1) normalised xyxy with exclusive max (as `box_from_mask` / the collate write it) is first
clipped to [0, 1]; a box with no extent left (x1 <= x0 or y1 <= y0, e.g. the zeros the collate writes where no
box is, or a box wholly outside the frame) is empty. Otherwise it covers every pixel it overlaps with positive
area: columns floor(x0 * w) .. ceil(x1 * w) - 1, with a 1e-4 pixel tolerance against float error (0.3 * 10 is
3.0000000000000004), and at least one column / row, so a box of one input pixel at stride 4 is one pixel.
"""
from __future__ import annotations

from typing import Optional

import torch

from rvos.errors import ConfigError
from rvos.losses.mask import dice_per_frame

_EPS = 1e-4  # pixels


def _span(lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    """Clipped normalised [lo, hi) [N] -> bool [N, n], True at the cells it overlaps (empty if hi <= lo)."""
    lo, hi = lo.clamp(0, 1), hi.clamp(0, 1)
    nonempty = hi > lo
    start = torch.floor(lo * n + _EPS).clamp(max=n - 1)
    end = torch.maximum(torch.ceil(hi * n - _EPS), start + 1)
    idx = torch.arange(n, device=lo.device, dtype=lo.dtype)
    return (idx >= start[:, None]) & (idx < end[:, None]) & nonempty[:, None]


def box_mask(boxes: torch.Tensor, size: tuple[int, int], present: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Rasterise boxes [..., 4] normalised xyxy at size (h, w) -> float {0, 1} [..., h, w] (module docstring).
    present [...] bool: False makes the box empty (object not visible), whatever its coordinates."""
    if boxes.shape[-1] != 4:
        raise ConfigError(f"box_mask expects boxes [..., 4] (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    h, w = size
    lead = boxes.shape[:-1]
    b = torch.nan_to_num(boxes.reshape(-1, 4).double(), nan=0.0)  # [N, 4], float64 for exact edges
    cols = _span(b[:, 0], b[:, 2], w)  # [N, w]
    rows = _span(b[:, 1], b[:, 3], h)  # [N, h]
    out = (rows[:, :, None] & cols[:, None, :]).float()  # [N, h, w]
    if present is not None:
        out = out * present.reshape(-1, 1, 1).to(out.dtype)
    return out.reshape(*lead, h, w)


def box_mil_per_frame(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits [..., h, w], box mask [..., h, w] in {0, 1} -> dice_x + dice_y per frame [...]."""
    t = target.to(logits.dtype)
    loss_y = dice_per_frame(logits.amax(-1)[..., None, :], t.amax(-1)[..., None, :])  # row maxima [..., 1, h]
    loss_x = dice_per_frame(logits.amax(-2)[..., None, :], t.amax(-2)[..., None, :])  # column maxima [..., 1, w]
    return loss_x + loss_y


def box_mil_loss(logits: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
                 present: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean box MIL loss over the valid frames.

    logits [N, h, w] (any leading dims, e.g. [B, T, h, w]); boxes [N, 4] normalised xyxy, or a box mask [N, h, w]
    already rasterised; valid bool [N]: frames that count; present bool [N] (with box coordinates only): False =
    annotated as not visible, every line a negative bag. No valid frame: 0, still connected to the graph.
    """
    if boxes.shape[-1] == 4 and boxes.shape[:-1] == logits.shape[:-2]:
        target = box_mask(boxes, tuple(logits.shape[-2:]), present)
    elif boxes.shape == logits.shape:
        target = boxes
    else:
        raise ConfigError(f"box_mil_loss: boxes {tuple(boxes.shape)} are neither [..., 4] nor a box mask shaped "
                          f"like the logits {tuple(logits.shape)}")
    valid = valid.to(torch.bool)
    if valid.shape != logits.shape[:-2]:
        raise ConfigError(f"box_mil_loss: valid {tuple(valid.shape)} must be {tuple(logits.shape[:-2])}")
    if not valid.any():
        return logits.sum() * 0.0
    return box_mil_per_frame(logits[valid], target[valid]).mean()
