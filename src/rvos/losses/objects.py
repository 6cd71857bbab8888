"""Set-prediction loss of the object decoder (Mask2Former-style), per frame.

Each frame's Q queries are matched one-to-one to the frame's K annotated objects by scipy's linear_sum_assignment
on the cost  objectness * (-log p_q) + mask_bce * BCE(m_q, M_k) + dice * dice(m_q, M_k).
Matched queries learn objectness 1 and their object's mask (BCE + dice); every other query learns objectness 0.
Objects are instance masks at the prediction's resolution (soft targets from area downsampling are fine).
Frames with no annotated object only teach objectness 0; in an incomplete frame (some object not annotated)
unmatched queries are left alone. Returned parts are means over the frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from rvos.losses.mask import dice_per_frame

PARTS = ("obj", "mask_bce", "mask_dice")


@dataclass
class ObjectLossWeights:
    obj: float = 2.0
    mask_bce: float = 5.0
    mask_dice: float = 5.0
    no_object: float = 0.5  # weight of the objectness term of unmatched queries (Mask2Former: 0.1 on a softmax)


@torch.no_grad()
def match_objects(logits: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor, w: ObjectLossWeights
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame: logits [Q], masks [Q, h, w], targets [K, h, w] -> (query indices, target indices)."""
    if targets.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    q, k = masks.shape[0], targets.shape[0]
    p = masks.flatten(1)  # [Q, P]
    t = targets.flatten(1).to(p.dtype)  # [K, P]
    # BCE of every query against every target, without materialising [Q, K, P]
    pos = F.softplus(-p)  # -log sigmoid
    neg = F.softplus(p)  # -log (1 - sigmoid)
    bce = (pos @ t.T + neg @ (1 - t).T) / p.shape[1]  # [Q, K]
    s = p.sigmoid()
    dice = 1 - (2 * s @ t.T + 1) / (s.sum(1, keepdim=True) + t.sum(1)[None] + 1)
    cls = -F.logsigmoid(logits)[:, None].expand(q, k)
    cost = w.obj * cls + w.mask_bce * bce + w.mask_dice * dice
    rows, cols = linear_sum_assignment(cost.float().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def object_losses(logits: torch.Tensor, masks: torch.Tensor, targets: list[torch.Tensor],
                  w: ObjectLossWeights | None = None, complete: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    """logits [N, Q], masks [N, Q, h, w]; targets: N tensors [K_n, h, w] (K_n may be 0) -> named parts.
    complete bool [N] (default all True): the frame's targets are all its objects; where False, unmatched queries
    get no objectness loss (they may have found an object the annotation leaves out)."""
    w = w or ObjectLossWeights()
    n = logits.shape[0]
    obj_target = torch.zeros_like(logits)
    obj_weight = torch.full_like(logits, w.no_object)
    if complete is not None:
        obj_weight = obj_weight * complete.to(logits.dtype)[:, None]
    pred, gt = [], []
    for i in range(n):
        rows, cols = match_objects(logits[i], masks[i], targets[i], w)
        obj_target[i, rows] = 1.0
        obj_weight[i, rows] = 1.0
        pred.append(masks[i, rows])
        gt.append(targets[i][cols].to(masks.dtype))
    obj = (F.binary_cross_entropy_with_logits(logits, obj_target, reduction="none") * obj_weight).sum() \
        / obj_weight.sum().clamp_min(1e-6)
    pred_m, gt_m = torch.cat(pred), torch.cat(gt)
    if pred_m.shape[0] == 0:
        zero = masks.sum() * 0.0
        return {"obj": obj, "mask_bce": zero, "mask_dice": zero}
    bce = F.binary_cross_entropy_with_logits(pred_m, gt_m, reduction="none").flatten(1).mean(1).mean()
    dice = dice_per_frame(pred_m, gt_m).mean()
    return {"obj": obj, "mask_bce": bce, "mask_dice": dice}
