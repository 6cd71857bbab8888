"""WSRVOS losses pinned on hand-computed values: MIL expression classification, positive prediction fusion
(pseudo-mask votes, Dice and Focal over confident pixels), temporal segment ranking, the straight-through top-k."""
from __future__ import annotations

import math

import pytest
import torch

from rvos.errors import ConfigError
from rvos.losses.expression_mil import expression_classification_loss, video_scores
from rvos.losses.positive_fusion import confident_dice, confident_focal, fuse_positives
from rvos.losses.ranking import soft_iou, temporal_ranking_loss
from rvos.models.selection import straight_through_topk


def sig(x):
    return 1 / (1 + math.exp(-x))


def focal(x, t, alpha=0.25, gamma=2.0):
    p = sig(x)
    ce = -math.log(p) if t else -math.log(1 - p)
    pt = p if t else 1 - p
    return (alpha if t else 1 - alpha) * (1 - pt) ** gamma * ce


# K=1 bag, T=2 frames, Q=2 proposals, E=3 candidate sentences
LOGITS = torch.tensor([[[[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
                        [[0.0, 0.0, 1.0], [2.0, 1.0, 2.0]]]])


def test_mil_lse_over_proposals_then_cross_entropy():
    valid = torch.tensor([[True, True]])
    # per proposal, mean over frames: q0 = (1, 0, 1), q1 = (1, 1, 1); log-sum-exp over proposals
    s = [math.log(math.e + math.e), math.log(1 + math.e), math.log(math.e + math.e)]
    assert video_scores(LOGITS, valid, "lse")[0].tolist() == pytest.approx(s, abs=1e-6)
    loss, usable = expression_classification_loss(LOGITS, valid, torch.ones(1, 3, dtype=torch.bool), "lse")
    expected = -(s[0] - math.log(sum(math.exp(v) for v in s)))
    assert float(loss) == pytest.approx(expected, abs=1e-6) and usable.tolist() == [True]


def test_mil_max_pool_valid_frames_and_missing_candidates():
    valid = torch.tensor([[True, False]])  # frame 0 only: q0 = (2, 0, 1), q1 = (0, 1, 0); max: (2, 1, 1)
    assert video_scores(LOGITS, valid, "max")[0].tolist() == pytest.approx([2.0, 1.0, 1.0])
    assert video_scores(LOGITS, valid, "mean")[0].tolist() == pytest.approx([1.0, 0.5, 0.5])
    cands = torch.tensor([[True, True, False]])  # the third sentence does not exist in this bag
    loss, _ = expression_classification_loss(LOGITS, valid, cands, "max")
    assert float(loss) == pytest.approx(-(2 - math.log(math.exp(2) + math.exp(1))), abs=1e-6)


def test_mil_bag_without_competitor_is_not_usable_and_positive_must_exist():
    loss, usable = expression_classification_loss(LOGITS, torch.ones(1, 2, dtype=torch.bool),
                                                  torch.tensor([[True, False, False]]))
    assert usable.tolist() == [False] and float(loss) == 0.0
    with pytest.raises(ConfigError, match="positive"):
        expression_classification_loss(LOGITS, torch.ones(1, 2, dtype=torch.bool), torch.tensor([[False, True, True]]))
    with pytest.raises(ConfigError, match="pool"):
        video_scores(LOGITS, torch.ones(1, 2, dtype=torch.bool), "sum")


# two positives of one object, one frame of 1x4 pixels
P1 = [0.9, 0.5, 0.1, 0.3]
P2 = [0.8, 0.7, 0.2, 0.1]
PROBS = torch.tensor([[[P1]], [[P2]]])  # [K=2, T=1, 1, 4]


def test_fusion_votes_after_min_max_normalisation():
    # n1 = (1, .5, 0, .25), n2 = (1, .857, .143, 0): both >= .6 at pixel 0; both <= .2 at pixel 2 only
    target, confident = fuse_positives(PROBS, fg=0.6, bg=0.2, agree=1.0, normalize=True)
    assert target[0, 0].tolist() == [1, 0, 0, 0] and confident[0, 0].tolist() == [True, False, True, False]
    # half the weight is enough: pixel 1 (n2 = .857) becomes foreground, pixel 3 (n2 = 0) background
    target, confident = fuse_positives(PROBS, fg=0.6, bg=0.2, agree=0.5, normalize=True)
    assert target[0, 0].tolist() == [1, 1, 0, 0] and confident[0, 0].tolist() == [True, True, True, True]
    # weights (3, 1): positive 1 alone carries 3/4 >= agree 0.7
    target, confident = fuse_positives(PROBS, torch.tensor([3.0, 1.0]), fg=0.6, bg=0.2, agree=0.7)
    assert target[0, 0].tolist() == [1, 0, 0, 0] and confident[0, 0].tolist() == [True, False, True, False]


def test_fusion_absolute_thresholds_and_flat_maps_abstain():
    target, confident = fuse_positives(PROBS, fg=0.6, bg=0.2, agree=1.0, normalize=False)
    assert target[0, 0].tolist() == [1, 0, 0, 0] and confident[0, 0].tolist() == [True, False, True, False]
    flat = torch.tensor([[[[0.5, 0.52, 0.5, 0.5]]], [[P2]]])  # max - min = 0.02 < 0.1: the first map abstains
    target, confident = fuse_positives(flat, fg=0.6, bg=0.2, agree=1.0, min_contrast=0.1)
    assert not confident.any() and not target.any()


def test_confident_dice_and_focal_by_hand():
    logits = torch.tensor([[0.0, 2.0, -2.0, 1.0]])  # [T=1, 4] treated as one frame of 1x4
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    conf = torch.tensor([[True, False, True, False]])
    d = confident_dice(logits[None], target[None], conf[None])  # [1]
    p0, p2 = sig(0.0), sig(-2.0)
    assert float(d[0]) == pytest.approx(1 - (2 * p0 + 1) / (p0 + p2 + 1 + 1), abs=1e-6)
    f = confident_focal(logits[None], target[None], conf[None])
    assert float(f[0]) == pytest.approx((focal(0.0, 1) + focal(-2.0, 0)) / 2, abs=1e-6)
    none = confident_focal(logits[None], target[None], torch.zeros_like(conf)[None])
    assert float(none[0]) == 0.0


def test_soft_iou_and_ranking_by_hand():
    m0, m1, m2 = [1.0, 0.0], [0.5, 0.5], [1.0, 0.0]
    probs = torch.tensor([[[m0], [m1], [m2]]])  # [B=1, T=3, 1, 2]
    assert float(soft_iou(probs[0, 0], probs[0, 1])) == pytest.approx(0.5 / 1.5, abs=1e-5)
    assert float(soft_iou(probs[0, 0], probs[0, 2])) == pytest.approx(1.0, abs=1e-5)
    valid = torch.ones(1, 3, dtype=torch.bool)
    # one triple (0, 1, 2): the far frame overlaps more (1) than the near one (1/3)
    loss, n = temporal_ranking_loss(probs, valid, margin=-0.1)
    assert n == 1 and float(loss) == pytest.approx(-0.1 - (1 / 3 - 1), abs=1e-5)
    loss, _ = temporal_ranking_loss(probs, valid, margin=0.2)
    assert float(loss) == pytest.approx(0.2 - (1 / 3 - 1), abs=1e-5)
    # in video order m0, m2, m1 the near frame overlaps more: no loss
    loss, _ = temporal_ranking_loss(probs, valid, order=torch.tensor([[0, 2, 1]]), margin=-0.1)
    assert float(loss) == 0.0


def test_ranking_skips_clips_without_three_distinct_frames():
    probs = torch.rand(2, 3, 2, 2, requires_grad=True)
    valid = torch.tensor([[True, True, False], [True, True, True]])
    order = torch.tensor([[0, 1, 2], [4, 4, 5]])  # clip 1 repeats its frame 4 (a short video's padding)
    loss, n = temporal_ranking_loss(probs, valid, order)
    assert n == 0 and float(loss.detach()) == 0.0
    loss.backward()  # connected to the graph
    assert probs.grad is not None


def test_straight_through_topk_forward_hard_backward_sigmoid():
    score = torch.tensor([[0.2, -0.1, 0.5]], requires_grad=True)
    g = straight_through_topk(score, 2, temperature=1.0)
    assert g.tolist() == [[1.0, 0.0, 1.0]]
    (g * torch.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    expected = [w * sig(s) * (1 - sig(s)) for w, s in zip([1, 2, 3], [0.2, -0.1, 0.5])]
    assert score.grad[0].tolist() == pytest.approx(expected, abs=1e-6)
    valid = torch.tensor([[True, False, False]])  # fewer real entries than k: padding never selected
    assert straight_through_topk(score.detach(), 2, 1.0, valid).tolist()[0][1:] == [0.0, 0.0]
