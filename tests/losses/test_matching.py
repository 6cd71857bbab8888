"""Video-level Hungarian matching on hand cases."""
import math

import pytest
import torch

from rvos.losses.matching import HungarianMatcher, MatchCosts


def _target():
    masks = torch.zeros(1, 2, 4, 4)  # K=1 target, T=2 frames
    masks[0, :, :2, :2] = 1
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]]])  # xyxy
    return masks, boxes


def test_score_cost_hand_value():
    masks, boxes = _target()
    present = torch.tensor([[True, False]])
    scores = torch.tensor([[0.0, 20.0, -20.0], [0.0, -20.0, -20.0]])  # [T, Q]
    m = HungarianMatcher(MatchCosts(score=1.0, dice=0, focal=0, box_l1=0, giou=0))
    cost = m.cost_matrix(torch.zeros(2, 3, 4, 4), scores, None, masks, present, present,
                         torch.ones(1, 2, dtype=torch.bool))
    # q0: BCE(0, 1) + BCE(0, 0) = 2 ln 2; q1: ~0; q2: BCE(-20, 1) = ~20
    assert cost[:, 0].tolist() == pytest.approx([2 * math.log(2), 0.0, 20.0], abs=1e-6)
    rows, cols = m(torch.zeros(2, 3, 4, 4), scores, None, masks, present, present, torch.ones(1, 2, dtype=torch.bool))
    assert rows.tolist() == [1] and cols.tolist() == [0]


def test_mask_and_box_costs_pick_the_matching_query():
    masks, boxes = _target()
    logits = torch.full((2, 3, 4, 4), -10.0)  # [T, Q, h, w]
    logits[:, 2, :2, :2] = 10.0  # query 2 segments the target in both frames
    logits[0, 0, :2, :2] = 10.0  # query 0 only in frame 0
    pred_boxes = torch.tensor([0.5, 0.5, 0.4, 0.4]).repeat(2, 3, 1)
    pred_boxes[:, 1] = torch.tensor([0.25, 0.25, 0.5, 0.5])  # query 1: the exact box, wrong masks
    frames = torch.ones(1, 2, dtype=torch.bool)
    scores = torch.zeros(2, 3)
    masks_only = HungarianMatcher(MatchCosts(score=0, box_l1=0, giou=0))
    assert masks_only(logits, scores, pred_boxes, masks, frames, frames, frames, boxes, frames)[0].tolist() == [2]
    boxes_only = HungarianMatcher(MatchCosts(score=0, dice=0, focal=0))
    cost = boxes_only.cost_matrix(logits, scores, pred_boxes, masks, frames, frames, frames, boxes, frames)
    assert cost[1, 0].item() == pytest.approx(-2 * 2 * 1.0)  # L1 0, GIoU 1 in both frames: -giou * 1 * T
    assert boxes_only(logits, scores, pred_boxes, masks, frames, frames, frames, boxes, frames)[0].tolist() == [1]
    # mask frames off -> the mask cost of those frames does not count
    no_mask = torch.zeros(1, 2, dtype=torch.bool)
    c = masks_only.cost_matrix(logits, scores, None, masks, no_mask, frames, frames)
    assert torch.all(c == 0)
