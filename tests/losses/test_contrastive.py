"""BLCL (WRVOS eq. 10-18): foreground/background sets and the sigmoid contrastive losses, on hand values."""
import math

import pytest
import torch

from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.contrastive import blcl_loss, blcl_sets, sigmoid_contrast

M, X, N = int(TargetKind.MASK), int(TargetKind.BOX), int(TargetKind.NONE)
LN2 = math.log(2)


def sp(x):
    """softplus: -log sigmoid(-x)."""
    return math.log1p(math.exp(x))


def logit(p):
    return math.log(p / (1 - p))


def test_sigmoid_contrast_hand_value():
    q = torch.tensor([1.0, 0.0])
    keys = torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # positive: -log s(2) = sp(-2); negatives: -log(1 - s(0)) = ln2, -log(1 - s(-1)) = sp(-1)
    got = sigmoid_contrast(q, keys, torch.tensor([True, False, False]))
    assert got.item() == pytest.approx((sp(-2) + LN2 + sp(-1)) / 3)


def sets_inputs():
    """One clip, T = 5 at 2x2: MASK, BOX, BOX (not visible), NONE, BOX (padding)."""
    kinds = torch.tensor([[M, X, X, N, X]])
    masks = torch.zeros(1, 5, 4, 4)
    masks[0, 0, :2, :2] = 1  # cell (0, 0) full
    masks[0, 0, 0, 2] = 1  # cell (0, 1) a quarter: background
    masks[0, 0, 2:, 2:] = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # cell (1, 1) a half: foreground
    masks[0, 3] = 1  # under NONE: ignored
    boxes = torch.tensor([[[0, 0, 0, 0], [0, 0, 0.5, 1.0], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]],
                         dtype=torch.float)
    present = torch.tensor([[True, True, False, True, True]])
    valid = torch.tensor([[True, True, True, True, False]])
    pred = torch.zeros(1, 5, 2, 2)
    # frame 1, box = left column: (0,0) .95 -> fg; (1,0) .5 -> ambiguous; (0,1) .5 and (1,1) .99 outside -> bg
    pred[0, 1] = torch.tensor([[logit(0.95), logit(0.5)], [logit(0.5), logit(0.99)]])
    pred[0, 2] = 30.0  # not visible: background whatever the prediction
    return kinds, masks, boxes, valid, present, pred


def as_list(x):
    return x[0].int().tolist()


def test_sets_with_pseudo_masks():
    kinds, masks, boxes, valid, present, pred = sets_inputs()
    fg, bg = blcl_sets((2, 2), kinds, masks, boxes, valid, present, pred, use_pseudo=True, d_th=0.9)
    assert fg.shape == bg.shape == (1, 5, 2, 2) and not (fg & bg).any()
    assert as_list(fg)[0] == [[1, 0], [0, 1]] and as_list(bg)[0] == [[0, 1], [1, 0]]  # mask frame
    assert as_list(fg)[1] == [[1, 0], [0, 0]] and as_list(bg)[1] == [[0, 1], [0, 1]]  # (1, 0) ambiguous
    assert as_list(fg)[2] == [[0, 0], [0, 0]] and as_list(bg)[2] == [[1, 1], [1, 1]]  # not visible
    for t in (3, 4):  # NONE, padding
        assert not fg[0, t].any() and not bg[0, t].any()


def test_threshold_and_pseudo_off():
    kinds, masks, boxes, valid, present, pred = sets_inputs()
    pred[0, 1, 1, 0] = logit(0.7)
    fg, bg = blcl_sets((2, 2), kinds, masks, boxes, valid, present, pred, d_th=0.9)
    assert not fg[0, 1, 1, 0] and not bg[0, 1, 1, 0]  # 0.7: ambiguous at 0.9
    fg, bg = blcl_sets((2, 2), kinds, masks, boxes, valid, present, pred, d_th=0.6)
    assert fg[0, 1, 1, 0]
    fg, bg = blcl_sets((2, 2), kinds, masks, boxes, valid, present, None, use_pseudo=False)
    assert as_list(fg)[1] == [[0, 0], [0, 0]] and as_list(bg)[1] == [[0, 1], [0, 1]]  # outside the box only
    assert as_list(fg)[0] == [[1, 0], [0, 1]]  # mask frames unchanged
    with pytest.raises(ConfigError):
        blcl_sets((2, 2), kinds, masks, boxes, valid, present, None, use_pseudo=True)
    with pytest.raises(ConfigError):
        blcl_sets((2, 2), kinds, masks, boxes, valid, present, pred, d_th=0.3)


def one_clip():
    """B = T = 1, C = 2, 1x3 cells: k0 = [1, 0] fg, k1 = [0, 1] bg, k2 = [2, 2] ignored; R^s = [1, 1]."""
    H = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]]).reshape(1, 1, 2, 1, 3)
    fg = torch.tensor([True, False, False]).reshape(1, 1, 1, 3)
    bg = torch.tensor([False, True, False]).reshape(1, 1, 1, 3)
    return H, torch.tensor([[1.0, 1.0]]), fg, bg


def test_blcl_hand_values_and_ignored_cells():
    H, s, fg, bg = one_clip()
    H.requires_grad_(True)
    parts = blcl_loss(H, s, fg, bg)
    assert set(parts) == {"blcl_lv", "blcl_cc_fg", "blcl_cc_bg"}
    assert parts["blcl_lv"].item() == pytest.approx((sp(-1) + sp(1)) / 2)  # R^s.k0 = 1 (pos), R^s.k1 = 1 (neg)
    assert parts["blcl_cc_fg"].item() == pytest.approx((sp(-1) + LN2) / 2)  # anchor k0: k0 pos 1, k1 neg 0
    assert parts["blcl_cc_bg"].item() == pytest.approx((sp(-1) + LN2) / 2)  # anchor k1: k1 pos 1, k0 neg 0
    sum(parts.values()).backward()
    assert H.grad[..., 2].abs().sum() == 0 and H.grad[..., :2].abs().sum() > 0  # the ambiguous cell is unused


def test_anchor_pools_cells_over_frames_and_options():
    # T = 2, 1x2 cells, C = 2. fg: frame 0 both cells [3, 0]; frame 1 cell [0, 3]. bg: frame 1 cell [0, 0].
    H = torch.tensor([[[3.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [3.0, 0.0]]]).reshape(1, 2, 2, 1, 2)
    fg = torch.tensor([[True, True], [True, False]]).reshape(1, 2, 1, 2)
    s = torch.tensor([[0.0, 0.0]])
    # pooled fg anchor [2, 1] (mean of frame means would be [1.5, 1.5]): logits 6, 6, 3 (pos), 0 (neg bg)
    parts = blcl_loss(H, s, fg, ~fg)
    assert parts["blcl_cc_fg"].item() == pytest.approx((2 * sp(-6) + sp(-3) + LN2) / 4)
    assert parts["blcl_lv"].item() == pytest.approx(LN2)  # R^s = 0: every logit 0
    # cosine + temperature: anchor [2, 1]/sqrt5; cos with [1, 0] = 2/sqrt5, with [0, 1] = 1/sqrt5; bg cell [0, 0]
    # normalises to 0: logit 0
    t = 0.5
    a, b = 2 / math.sqrt(5) / t, 1 / math.sqrt(5) / t
    parts = blcl_loss(H, s, fg, ~fg, normalize=True, temperature=t)
    assert parts["blcl_cc_fg"].item() == pytest.approx((2 * sp(-a) + sp(-b) + LN2) / 4)


def test_undefined_terms_are_left_out_of_the_batch_mean():
    H, s, fg, bg = one_clip()
    H2, s2 = torch.cat([H, 2 * H]), torch.cat([s, s])
    fg2, bg2 = torch.cat([fg, torch.zeros_like(fg)]), torch.cat([bg, bg])  # clip 1: no foreground
    parts = blcl_loss(H2, s2, fg2, bg2)
    single = blcl_loss(H, s, fg, bg)
    assert parts["blcl_cc_fg"].item() == pytest.approx(single["blcl_cc_fg"].item())  # clip 1 has no fg anchor
    # clip 1 counts for L_LV (k1 * 2 = [0, 2], negative: sp(2)) and L_CC_bg (anchor [0, 2], k1 positive: sp(-4))
    assert parts["blcl_lv"].item() == pytest.approx((single["blcl_lv"].item() + sp(2)) / 2)
    assert parts["blcl_cc_bg"].item() == pytest.approx((single["blcl_cc_bg"].item() + sp(-4)) / 2)


def test_no_cells_gives_connected_zeros_and_gradients_flow():
    torch.manual_seed(0)
    H = torch.randn(2, 3, 8, 4, 4, requires_grad=True)
    s = torch.randn(2, 8, requires_grad=True)
    none = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    parts = blcl_loss(H, s, none, none)
    assert all(v.item() == 0 for v in parts.values())
    sum(parts.values()).backward()
    fg = torch.rand(2, 3, 4, 4) > 0.7
    bg = ~fg & (torch.rand(2, 3, 4, 4) > 0.2)
    H.grad = s.grad = None
    parts = blcl_loss(H, s, fg, bg)
    sum(parts.values()).backward()
    assert H.grad.abs().sum() > 0 and s.grad.abs().sum() > 0
    assert torch.all(H.grad.permute(0, 1, 3, 4, 2)[~(fg | bg)] == 0)  # unused cells get nothing
    grads = []
    for detach in (False, True):
        H.grad = None
        blcl_loss(H, s, fg, bg, detach_anchors=detach)["blcl_cc_fg"].backward()
        grads.append(H.grad.clone())
    assert not torch.allclose(grads[0], grads[1])  # the anchor path carries gradient unless detached


def test_bad_inputs_raise():
    H, s, fg, bg = one_clip()
    with pytest.raises(ConfigError):
        blcl_loss(H, s, fg, fg)  # overlapping sets
    with pytest.raises(ConfigError):
        blcl_loss(H, torch.zeros(1, 3), fg, bg)
    with pytest.raises(ConfigError):
        blcl_loss(H, s, fg, bg, temperature=0)
