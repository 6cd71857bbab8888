"""Dice / focal / box ops pinned on hand-computed values."""
import math

import pytest
import torch

from rvos.losses.boxes import (box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, elementwise_giou, generalized_box_iou,
                               box_iou)
from rvos.losses.mask import dice_loss, sigmoid_focal_loss

LN2 = math.log(2)
ONE = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # one positive pixel of four
EMPTY = torch.zeros(1, 2, 2)


def test_dice_hand_values():
    logits = torch.zeros(2, 2, 2)  # sigmoid = 0.5 everywhere
    targets = torch.cat([ONE, EMPTY])
    # frame 0: 1 - (2*0.5 + 1) / (2 + 1 + 1) = 0.5; frame 1 (empty target): 1 - 1 / (2 + 0 + 1) = 2/3
    assert dice_loss(logits, targets, torch.tensor([True, False])).item() == pytest.approx(0.5)
    assert dice_loss(logits, targets, torch.tensor([False, True])).item() == pytest.approx(2 / 3)
    assert dice_loss(logits, targets, torch.tensor([True, True])).item() == pytest.approx((0.5 + 2 / 3) / 2)


def test_dice_perfect_prediction_is_near_zero_even_for_empty_target():
    assert dice_loss(torch.full((1, 2, 2), -30.0), EMPTY, torch.tensor([True])).item() == pytest.approx(0, abs=1e-9)
    logits = torch.where(ONE > 0, 30.0, -30.0)
    assert dice_loss(logits, ONE, torch.tensor([True])).item() == pytest.approx(0, abs=1e-9)


def test_focal_hand_values():
    logits = torch.zeros(2, 2, 2)
    targets = torch.cat([ONE, EMPTY])
    # p = 0.5: ce = ln2, (1 - p_t)^2 = 1/4; alpha 0.25 for the positive pixel, 0.75 for the 3 negatives
    f0 = LN2 * 0.25 * (0.25 + 3 * 0.75) / 4
    f1 = LN2 * 0.25 * 0.75
    valid = torch.tensor([True, True])
    assert sigmoid_focal_loss(logits, targets, torch.tensor([True, False])).item() == pytest.approx(f0)
    assert sigmoid_focal_loss(logits, targets, valid).item() == pytest.approx((f0 + f1) / 2)
    # gamma 0, alpha disabled: plain BCE
    assert sigmoid_focal_loss(logits, targets, valid, alpha=-1, gamma=0).item() == pytest.approx(LN2)


def test_all_invalid_gives_connected_zero():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    targets = torch.ones(2, 3, 4, 4)
    valid = torch.zeros(2, 3, dtype=torch.bool)
    for fn in (dice_loss, sigmoid_focal_loss):
        loss = fn(logits, targets, valid)
        assert loss.item() == 0.0
        loss.backward()  # still part of the graph
        assert logits.grad is not None and logits.grad.abs().sum() == 0


def test_box_conversions_round_trip():
    xyxy = torch.tensor([[0.1, 0.2, 0.5, 0.8]])
    cxcywh = box_xyxy_to_cxcywh(xyxy)
    assert torch.allclose(cxcywh, torch.tensor([[0.3, 0.5, 0.4, 0.6]]))
    assert torch.allclose(box_cxcywh_to_xyxy(cxcywh), xyxy)


def test_giou_hand_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]])
    # overlap 1, union 7, hull 9 -> 1/7 - 2/9; disjoint: union 2, hull 9 -> -7/9
    expected = torch.tensor([1 / 7 - 2 / 9, -7 / 9])
    assert torch.allclose(elementwise_giou(a, b), expected)
    assert torch.allclose(torch.diagonal(generalized_box_iou(a, b)), expected)
    iou, _ = box_iou(a, a)
    assert torch.allclose(torch.diagonal(iou), torch.ones(2))
    assert generalized_box_iou(a, a).diagonal().allclose(torch.ones(2))
