"""Relational cycle consistency (R2-VOS eq. 8-10) pinned on hand-computed values."""
import math

import pytest
import torch

from rvos.errors import ConfigError
from rvos.losses.cycle import normalized_distances, relational_cycle_loss, triple_cosines


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5


# E: a 3-4-5 right triangle; E': the unit right isosceles triangle (both with the right angle at point 0)
E = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
E_REC = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def test_normalized_distances_by_hand():
    d, mu = normalized_distances(E)
    # ordered pairs (0,1) (0,2) (1,0) (1,2) (2,0) (2,1): 3 4 3 5 4 5, mean 4
    assert float(mu) == pytest.approx(4.0)
    assert d.tolist() == pytest.approx([0.75, 1.0, 0.75, 1.25, 1.0, 1.25])


def test_triple_cosines_by_hand():
    cos, valid = triple_cosines(E)
    assert int(valid.sum()) == 6  # ordered triples of 3 distinct points
    assert float(cos[1, 0, 2]) == pytest.approx(0.0, abs=1e-6)  # right angle at point 0
    assert float(cos[0, 1, 2]) == pytest.approx(0.6)  # at (3,0): (-3,0).(-3,4) / (3*5)
    assert float(cos[0, 2, 1]) == pytest.approx(0.8)  # at (0,4): (0,-4).(3,-4) / (4*5)
    assert float(cos[2, 1, 0]) == pytest.approx(0.6)  # the same angle, the other order


def test_distance_loss_by_hand():
    out = relational_cycle_loss(E, E_REC, mode="distance")
    mu_rec = (2 + math.sqrt(2)) / 3
    t = [0.75, 1.0, 1.25]  # pairs (0,1) (0,2) (1,2), each counted twice in the mean
    s = [1 / mu_rec, 1 / mu_rec, math.sqrt(2) / mu_rec]
    expected = sum(huber(a - b) for a, b in zip(s, t)) / 3
    assert out.angle is None and out.complete
    assert float(out.distance) == pytest.approx(expected, rel=1e-5)
    assert float(out.total) == pytest.approx(expected, rel=1e-5)
    summed = relational_cycle_loss(E, E_REC, mode="distance", reduction="sum")
    assert float(summed.distance) == pytest.approx(6 * expected, rel=1e-5)


def test_angle_loss_and_total_by_hand():
    out = relational_cycle_loss(E, E_REC, mode="both", angle_weight=2.0)
    r = 1 / math.sqrt(2)  # E' angles at points 1 and 2 are 45 degrees
    angle = (huber(0.0) + huber(r - 0.6) + huber(r - 0.8)) / 3
    assert float(out.angle) == pytest.approx(angle, rel=1e-5)
    assert float(out.total) == pytest.approx(float(out.distance) + 2.0 * angle, rel=1e-5)
    only = relational_cycle_loss(E, E_REC, mode="angle")
    assert only.distance is None and float(only.total) == pytest.approx(angle, rel=1e-5)


def test_huber_linear_branch():
    # 2 points normalised to distance 1 either way whatever the scale -> 0; so use 3 points with a big mismatch
    e = torch.tensor([[0.0], [1.0], [10.0]])  # distances 1 9 10, mean 20/3
    r = torch.tensor([[0.0], [10.0], [11.0]])  # distances 10 1 11, mean 22/3
    t = [3 / 20, 27 / 20, 30 / 20]
    s = [30 / 22, 3 / 22, 33 / 22]
    expected = sum(huber(a - b) for a, b in zip(s, t)) / 3
    assert float(relational_cycle_loss(e, r, mode="distance").distance) == pytest.approx(expected, rel=1e-5)
    assert abs(s[0] - t[0]) > 1  # the linear branch of the Huber loss is exercised


def test_structure_preserved_is_zero_and_scale_invariant():
    torch.manual_seed(0)
    e = torch.randn(5, 8)
    rot = torch.linalg.qr(torch.randn(8, 8))[0]
    out = relational_cycle_loss(e, 3.0 * e @ rot + 1.0)  # similarity transform keeps distance ratios and angles
    assert float(out.distance) == pytest.approx(0.0, abs=1e-6) and float(out.angle) == pytest.approx(0.0, abs=1e-6)


def test_positive_mask_selects_pairs():
    e = torch.cat([E, torch.tensor([[100.0, -7.0]])])
    r = torch.cat([E_REC, torch.tensor([[-5.0, 2.0]])])
    masked = relational_cycle_loss(e, r, positive=torch.tensor([True, True, True, False]))
    plain = relational_cycle_loss(E, E_REC)
    assert masked.num_positive == 3
    assert float(masked.total) == pytest.approx(float(plain.total), rel=1e-6)


def test_too_few_positives_is_none_not_zero():
    one = relational_cycle_loss(E, E_REC, positive=torch.tensor([True, False, False]))
    assert one.distance is None and one.angle is None and one.total is None and not one.complete
    two = relational_cycle_loss(E, E_REC, positive=torch.tensor([True, True, False]))
    assert two.distance is not None and two.angle is None and not two.complete
    assert float(two.total) == pytest.approx(0.0, abs=1e-6)  # two points: both normalised distances are 1
    assert relational_cycle_loss(E[:2], E_REC[:2], mode="angle").total is None


def test_degenerate_targets():
    same = torch.ones(3, 2)
    assert relational_cycle_loss(same, E_REC).total is None  # all sentences equal: no structure to keep
    dup = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # a repeated sentence
    _, valid = triple_cosines(dup)
    assert valid.nonzero().tolist() == [[0, 2, 1], [1, 2, 0]]  # only the angle at point 2 is defined (cos = 1)
    out = relational_cycle_loss(dup, E_REC)
    assert float(out.angle) == pytest.approx(huber(1 / math.sqrt(2) - 1.0), rel=1e-5)  # E' angle there: 45 deg


def test_gradients_reach_reconstruction_only_by_default():
    e = E.clone().requires_grad_(True)
    r = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5]], requires_grad=True)  # two coincident reconstructions
    relational_cycle_loss(e, r).total.backward()
    assert e.grad is None
    assert torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0
    e2 = E.clone().requires_grad_(True)
    relational_cycle_loss(e2, E_REC, detach_target=False).total.backward()
    assert e2.grad is not None and e2.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ConfigError):
        relational_cycle_loss(E, E_REC, mode="pointwise")
    with pytest.raises(ConfigError):
        relational_cycle_loss(E, E_REC[:2])
    with pytest.raises(ConfigError):
        relational_cycle_loss(E, E_REC, positive=torch.tensor([True, False]))
