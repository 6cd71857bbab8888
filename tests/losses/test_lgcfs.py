"""LGCFS (WRVOS eq. 6-9) pinned on hand-computed values with a 1x1-conv stand-in for the dynamic convolution."""
import math
from types import SimpleNamespace

import pytest
import torch

from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.lgcfs import LGCFSVariant, cross_frame_pairs, lgcfs_loss, model_apply_filters
from rvos.models.heads import SingleHead

LN2 = math.log(2)
M, X, N = int(TargetKind.MASK), int(TargetKind.BOX), int(TargetKind.NONE)
F0 = LN2 * 0.25 * (0.25 + 3 * 0.75) / 4  # focal of p = 0.5 against one positive pixel of four (alpha .25, gamma 2)


def conv1x1(features, filters):
    """[N, C, h, w] x [N, C] -> [N, 1, h, w]."""
    return torch.einsum("nchw,nc->nhw", features, filters)[:, None]


def clip():
    """One clip, T = 4: MASK, BOX, BOX, NONE on 2x2 features of ones; frame 0's own filter is 30, the others 0,
    so frame 0 segmented with its OWN filter would be p = 1, with any other filter p = 0.5."""
    features = torch.ones(1, 4, 1, 2, 2)
    filters = torch.tensor([[[30.0], [0.0], [0.0], [0.0]]])  # [B, T, P=C=1]
    kinds = torch.tensor([[M, X, X, N]])
    masks = torch.zeros(1, 4, 2, 2)
    masks[0, 0, 0, 0] = 1  # one positive pixel of four
    boxes = torch.tensor([[[0, 0, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0, 0, 1, 1]]], dtype=torch.float)
    valid = torch.ones(1, 4, dtype=torch.bool)
    return features, filters, kinds, masks, boxes, valid


# Hand values. Mask frame 0 with the filters of tau = 1, 2, 3 (p = 0.5): dice 0.5 and focal F0 each.
# Box frame t = 1 (or 2), box = pixel (0, 0), row target [1, 0]:
#   tau = 0 (p = 1): per axis 1 - (2 + 1) / (2 + 1 + 1) = 1/4 -> 1/2;  tau = other two (p = 0.5): per axis
#   1 - (1 + 1) / (1 + 1 + 1) = 1/3 -> 2/3 each.  Per box frame 1/2 + 4/3 = 11/6; two box frames 11/3.
DICE, FOCAL, MIL_SUM = 1.5, 3 * F0, 11 / 3


def test_pairs_are_off_diagonal_and_valid():
    targets = torch.tensor([[True, False, True]])
    valid = torch.tensor([[True, True, False]])
    assert cross_frame_pairs(targets & valid, valid).tolist() == [[0, 0, 1]]


def test_full_variant_hand_values():
    parts = lgcfs_loss(*clip()[:2], conv1x1, *clip()[2:], variant="full")
    assert set(parts) == {"lgcfs_dice", "lgcfs_focal", "lgcfs_mil"}
    assert parts["lgcfs_dice"].item() == pytest.approx(DICE)
    assert parts["lgcfs_focal"].item() == pytest.approx(FOCAL)
    assert parts["lgcfs_mil"].item() == pytest.approx(MIL_SUM)


def test_avg_variant_divides_by_the_number_of_box_frames():
    parts = lgcfs_loss(*clip()[:2], conv1x1, *clip()[2:], variant=LGCFSVariant.FIRST_FRAME_OTHERS_AVG)
    assert parts["lgcfs_dice"].item() == pytest.approx(DICE)
    assert parts["lgcfs_mil"].item() == pytest.approx(MIL_SUM / 2)


def test_first_frame_variant_has_no_mil_part():
    parts = lgcfs_loss(*clip()[:2], conv1x1, *clip()[2:], variant="first_frame")
    assert set(parts) == {"lgcfs_dice", "lgcfs_focal"}
    assert parts["lgcfs_dice"].item() == pytest.approx(DICE)
    with pytest.raises(ConfigError):
        lgcfs_loss(*clip()[:2], conv1x1, *clip()[2:], variant="second_frame")


def test_none_frame_is_no_target_but_its_filter_counts():
    features, filters, kinds, masks, boxes, valid = clip()
    masks[0, 3] = 1  # junk under a NONE target: ignored
    boxes[0, 3] = torch.tensor([0.5, 0.5, 1.0, 1.0])
    parts = lgcfs_loss(features, filters, conv1x1, kinds, masks, boxes, valid)
    assert parts["lgcfs_dice"].item() == pytest.approx(DICE)
    assert parts["lgcfs_mil"].item() == pytest.approx(MIL_SUM)
    valid[0, 3] = False  # padding: its filter leaves every target frame
    parts = lgcfs_loss(features, filters, conv1x1, kinds, masks, boxes, valid)
    assert parts["lgcfs_dice"].item() == pytest.approx(2 * 0.5)
    assert parts["lgcfs_mil"].item() == pytest.approx(2 * (1 / 2 + 2 / 3))


def test_invisible_box_frame_and_batch_mean():
    features, filters, kinds, masks, boxes, valid = clip()
    present = torch.tensor([[True, True, False, True]])  # frame 2: annotated not visible, all lines negative
    # frame 2, tau = 0 (p = 1): per axis 1 - 1 / (2 + 1) = 2/3; tau = 1, 3 (p = .5): 1 - 1 / (1 + 1) = 1/2
    mil = 11 / 6 + (4 / 3 + 2 * 1.0)
    parts = lgcfs_loss(features, filters, conv1x1, kinds, masks, boxes, valid, present=present)
    assert parts["lgcfs_mil"].item() == pytest.approx(mil)
    # a second clip with NONE everywhere halves every part (mean over the clips of the batch)
    cat = lambda a, b: torch.cat([a, b])  # noqa: E731
    parts2 = lgcfs_loss(cat(features, features), cat(filters, filters), conv1x1, cat(kinds, torch.full_like(kinds, N)),
                        cat(masks, masks), cat(boxes, boxes), cat(valid, valid), present=cat(present, present))
    for k in parts:
        assert parts2[k].item() == pytest.approx(parts[k].item() / 2)


def test_resolution_upsample_or_downsample():
    features, filters, kinds, masks, boxes, valid = clip()
    big = masks.repeat_interleave(2, -1).repeat_interleave(2, -2)  # [1, 4, 4, 4]: a 2x2 block of 16
    up = lgcfs_loss(features, filters, conv1x1, kinds, big, boxes, valid, upsample=True)
    assert up["lgcfs_dice"].item() == pytest.approx(3 * (1 - (2 * 0.5 * 4 + 1) / (8 + 4 + 1)))
    # box rasterised at 4x4 (a 2x2 block): tau = 0 (p = 1) per axis 1 - 5/7; others 1 - 3/5
    assert up["lgcfs_mil"].item() == pytest.approx(2 * (2 * 2 / 7 + 2 * 2 * 2 / 5))
    down = lgcfs_loss(features, filters, conv1x1, kinds, big, boxes, valid, upsample=False)
    assert down["lgcfs_dice"].item() == pytest.approx(DICE)


def test_no_target_frames_gives_connected_zeros():
    features, filters, kinds, masks, boxes, valid = clip()
    features.requires_grad_(True)
    parts = lgcfs_loss(features, filters, conv1x1, torch.full_like(kinds, N), masks, boxes, valid)
    assert all(v.item() == 0 for v in parts.values())
    sum(parts.values()).backward()
    assert features.grad is not None


def test_gradients_reach_features_and_filters_through_a_real_head():
    torch.manual_seed(0)
    head = SingleHead(dim=16, mask_dim=4, hidden=8, layers=3)
    apply = model_apply_filters(SimpleNamespace(apply_filters=head.mask_logits))
    features = torch.randn(2, 3, 4, 6, 6, requires_grad=True)
    filters = (0.3 * torch.randn(2, 3, head.num_params)).requires_grad_(True)
    kinds = torch.tensor([[M, X, X], [X, M, N]])
    masks = (torch.rand(2, 3, 12, 12) > 0.5).float()
    boxes = torch.tensor([0.1, 0.2, 0.6, 0.9]).expand(2, 3, 4)
    parts = lgcfs_loss(features, filters, apply, kinds, masks, boxes, torch.ones(2, 3, dtype=torch.bool))
    assert all(torch.isfinite(v) and v > 0 for v in parts.values())
    sum(parts.values()).backward()
    assert features.grad.abs().sum() > 0 and filters.grad.abs().sum() > 0
    # frame 2 of clip 1 is NONE and the other frames' features are the targets: its features get no gradient
    assert features.grad[1, 2].abs().sum() == 0 and filters.grad[1, 2].abs().sum() > 0
