"""The moment head (models/moment.py): mask cues by hand, the temporal receptive field, the relevance loss by
hand, and relevance through RVOSModel and the predictor."""
from __future__ import annotations

import math

import torch

from rvos.methods.tgl import moment_loss
from rvos.models import ModelConfig, build_model
from rvos.models.moment import MomentHead, mask_cues


def test_mask_cues_by_hand():
    logits = torch.full((1, 2, 1, 4, 5), -30.0)
    logits[0, 0, 0, 1, 3] = 30.0  # one pixel at row 1, column 3
    cues = mask_cues(logits, None)  # [1, 2, 4]: area, centre x, centre y, peak
    # the centre is pulled towards 0.5 by a prior mass of 1e-3: (0.7 + 0.5e-3) / 1.001
    want = torch.tensor([1 / 20, (3.5 / 5 + 0.5e-3) / 1.001, (1.5 / 4 + 0.5e-3) / 1.001, 1.0])
    assert torch.allclose(cues[0, 0], want, atol=1e-5)
    assert torch.allclose(cues[0, 1], torch.tensor([0.0, 0.5, 0.5, 0.0]), atol=1e-4)  # empty: centre 0.5
    # two queries: the scores' softmax weights them (query 1 has all the weight)
    two = torch.cat([torch.full((1, 1, 1, 4, 5), -30.0), logits[:, :1]], 2)  # [1, 1, 2, 4, 5]
    cues = mask_cues(two, torch.tensor([[[-50.0, 50.0]]]))
    assert torch.allclose(cues[0, 0], want, atol=1e-5)


def test_temporal_receptive_field_and_batch_independence():
    torch.manual_seed(0)
    head = MomentHead(dim=16, hidden=8, temporal_layers=2).eval()
    visual, sent = torch.randn(2, 8, 16, 3, 4), torch.randn(2, 16)
    masks = torch.randn(2, 8, 1, 6, 8)
    out = head(visual, sent, masks)
    assert out.shape == (2, 8)
    changed = visual.clone()
    changed[0, 5] += 1.0
    out2 = head(changed, sent, masks)
    # two kernel-3 layers: frame 5 reaches frames 3..7 of its own clip only
    assert torch.equal(out2[0, :3], out[0, :3]) and not torch.allclose(out2[0, 3:], out[0, 3:])
    assert torch.equal(out2[1], out[1])
    assert head(visual, sent).shape == (2, 8)  # without mask cues


def test_moment_loss_by_hand():
    rel = torch.tensor([[0.0, math.log(3.0), 5.0]])
    span = torch.tensor([[True, False, True]])
    frames = torch.tensor([[True, True, False]])  # the third frame does not count
    # BCE(0, 1) = ln 2; BCE(ln 3, 0) = -ln(1 - 3/4) = ln 4
    assert math.isclose(float(moment_loss(rel, span, frames)), 1.5 * math.log(2), rel_tol=1e-6)
    assert math.isclose(float(moment_loss(rel, span, frames, pos_weight=3.0)), 2.5 * math.log(2), rel_tol=1e-6)


def test_model_outputs_relevance_per_frame():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vision="tiny", text="tiny", dim=16, num_heads=2, fpn_dims=(16, 16, 8), mask_dim=8,
                                    dyn_hidden=8, vision_pretrained=False, moment=True, head="multi", num_queries=3))
    out = model(torch.rand(2, 3, 3, 32, 48), ["the red box", "a cat"])
    assert out.relevance.shape == (2, 3)
    out.relevance.sum().backward()
    assert model.moment.out.weight.grad.abs().sum() > 0
    assert build_model(ModelConfig(vision="tiny", text="tiny", dim=16, num_heads=2, vision_pretrained=False)).moment is None


def test_central_difference_by_hand():
    from rvos.models.moment import central_difference

    x = torch.tensor([[[0.0], [1.0], [4.0], [9.0]]])
    # inside (x_{t+1} - x_{t-1}) / 2; the ends extrapolate linearly: one-sided differences
    assert torch.allclose(central_difference(x)[0, :, 0], torch.tensor([1.0, 2.0, 4.0, 5.0]))
    assert torch.equal(central_difference(x[:, :1]), torch.zeros(1, 1, 1))
