"""Video-level Hungarian matching of queries to targets (ReferFormer): a query's cost is summed over the clip's
frames, then scipy's linear_sum_assignment picks one query per target. With one target per clip (RVOS: the
union of the referred objects) this is the query of lowest total cost; the assignment keeps K > 1 correct too.

Cost of query q for target k, summed over frames t:
  score * BCE(score_tq, present_kt)                       on valid frames
  dice * dice(m_tq, M_kt) + focal * focal(m_tq, M_kt)     on frames with a mask target
  box_l1 * |b_tq - B_kt|_1 - giou * GIoU(b_tq, B_kt)      on frames with a visible box target (if boxes predicted)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from rvos.losses.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, elementwise_giou
from rvos.losses.mask import dice_per_frame, focal_per_frame


@dataclass
class MatchCosts:
    score: float = 2.0
    dice: float = 5.0
    focal: float = 2.0
    box_l1: float = 5.0
    giou: float = 2.0


class HungarianMatcher:
    def __init__(self, costs: MatchCosts | None = None, alpha: float = 0.25, gamma: float = 2.0):
        self.costs = costs or MatchCosts()
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def cost_matrix(self, mask_logits: torch.Tensor, scores: torch.Tensor, boxes: Optional[torch.Tensor],
                    tgt_masks: torch.Tensor, mask_frames: torch.Tensor, present: torch.Tensor, valid: torch.Tensor,
                    tgt_boxes: Optional[torch.Tensor] = None, box_frames: Optional[torch.Tensor] = None
                    ) -> torch.Tensor:
        """One clip. Predictions: mask_logits [T, Q, h, w], scores [T, Q], boxes [T, Q, 4] cxcywh or None.
        Targets (K of them): tgt_masks [K, T, h, w], mask_frames / present / valid bool [K, T] (valid may be [T]),
        tgt_boxes [K, T, 4] xyxy, box_frames bool [K, T]. Returns cost [Q, K]."""
        c = self.costs
        t_, q = scores.shape
        k = tgt_masks.shape[0]
        valid = valid.expand(k, t_).float()
        # score: BCE of each query's logit against "the target is visible in frame t"
        s = scores.T[:, None, :].expand(q, k, t_)  # [Q, K, T]
        bce = F.binary_cross_entropy_with_logits(s, present[None].float().expand(q, k, t_), reduction="none")
        cost = c.score * (bce * valid[None]).sum(-1)
        # masks: per-frame dice and focal of every query against every target
        m = mask_logits.permute(1, 0, 2, 3)[:, None]  # [Q, 1, T, h, w]
        tm = tgt_masks[None]  # [1, K, T, h, w]
        mask_cost = c.dice * dice_per_frame(m, tm) + c.focal * focal_per_frame(m, tm, self.alpha, self.gamma)
        cost = cost + (mask_cost * (mask_frames.float() * valid)[None]).sum(-1)  # [Q, K]
        if boxes is not None and tgt_boxes is not None and box_frames is not None and (c.box_l1 or c.giou):
            pb = boxes.permute(1, 0, 2)  # [Q, T, 4]
            tb = box_xyxy_to_cxcywh(tgt_boxes)  # [K, T, 4]
            l1 = (pb[:, None] - tb[None]).abs().sum(-1)  # [Q, K, T]
            pxy = box_cxcywh_to_xyxy(pb)[:, None].expand(q, k, t_, 4)
            txy = tgt_boxes[None].expand(q, k, t_, 4)
            giou = elementwise_giou(pxy.reshape(-1, 4), txy.reshape(-1, 4)).reshape(q, k, t_)
            cost = cost + ((c.box_l1 * l1 - c.giou * giou) * (box_frames.float() * valid)[None]).sum(-1)
        return cost

    def __call__(self, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Same arguments as `cost_matrix`; returns (query indices, target indices), one pair per target."""
        cost = self.cost_matrix(*args, **kwargs)
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)
