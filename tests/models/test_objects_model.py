"""The object-centric model's parts on tiny hand-built inputs: set loss, tracker, descriptors, composition."""
import math

import pytest
import torch

from rvos.errors import ConfigError
from rvos.losses.objects import ObjectLossWeights, match_objects, object_losses
from rvos.models import ModelConfig, build_model
from rvos.models.object_model import compose, presence_logit
from rvos.models.objects import ObjectDecoder
from rvos.models.referring import frame_descriptors, rescale_geometry, resample, video_inputs, with_motion
from rvos.models.tracking import QueryTracker, gather_tracks, link_queries


def square(h, w, y0, x0, s):
    m = torch.zeros(h, w)
    m[y0:y0 + s, x0:x0 + s] = 1
    return m


def test_match_objects_pairs_each_target_with_its_mask():
    t = torch.stack([square(8, 8, 0, 0, 4), square(8, 8, 4, 4, 4)])  # [2, 8, 8]
    masks = torch.stack([t[1] * 20 - 10, torch.full((8, 8), -10.0), t[0] * 20 - 10])  # query 0 = target 1, 2 = target 0
    rows, cols = match_objects(torch.zeros(3), masks, t, ObjectLossWeights())
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 2: 0}


def test_object_losses_hand_computed():
    # one frame, two queries, one target matched by query 0 with a perfect (saturated) mask
    t = [square(4, 4, 0, 0, 2)[None]]
    masks = torch.stack([t[0][0] * 200 - 100, torch.full((4, 4), -100.0)])[None]  # [1, 2, 4, 4]
    logits = torch.tensor([[0.0, 0.0]])
    w = ObjectLossWeights(no_object=0.5)
    parts = object_losses(logits, masks, t, w)
    # objectness: BCE(0, 1) = BCE(0, 0) = log 2, weights 1 and 0.5 -> log 2
    assert parts["obj"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert parts["mask_bce"].item() == pytest.approx(0.0, abs=1e-6)
    # dice with +1 smoothing: 1 - (2*4 + 1) / (4 + 4 + 1) = 0
    assert parts["mask_dice"].item() == pytest.approx(0.0, abs=1e-6)
    # an incomplete frame leaves the unmatched query's objectness alone: only the matched query's log 2 counts
    parts = object_losses(torch.tensor([[0.0, 5.0]]), masks, t, w, complete=torch.tensor([False]))
    assert parts["obj"].item() == pytest.approx(math.log(2), abs=1e-6)


def test_object_losses_frame_without_objects_only_teaches_no_object():
    masks = torch.zeros(1, 2, 4, 4, requires_grad=True)
    parts = object_losses(torch.zeros(1, 2), masks, [torch.zeros(0, 4, 4)])
    assert parts["obj"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert parts["mask_dice"].item() == 0.0
    (parts["mask_dice"] + parts["mask_bce"]).backward()  # still connected to the graph


def test_object_decoder_shapes_and_backward():
    dec = ObjectDecoder((8, 16, 24, 32), dim=16, num_queries=3, num_layers=3, num_heads=2, fpn_dims=(16, 16, 8),
                        mask_dim=8)  # 3 layers: one per memory level (strides 32, 16, 8)
    feats = [torch.randn(2, c, 32 // 2 ** i, 48 // 2 ** i, requires_grad=True) for i, c in enumerate((8, 16, 24, 32))]
    o = dec(feats)
    assert o.embed.shape == (2, 3, 16) and o.logits.shape == (2, 3) and o.masks.shape == (2, 3, 32, 48)
    assert len(o.aux) == 2
    targets = [torch.ones(1, 32, 48), torch.zeros(0, 32, 48)]
    loss = sum(sum(object_losses(lg, m, targets).values()) for lg, m in [(o.logits, o.masks)] + o.aux)
    loss.backward()
    assert all(p.grad is not None for p in dec.parameters() if p.requires_grad)


def test_tracker_follows_objects_when_queries_swap():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    frames = torch.stack([torch.stack([a, b]), torch.stack([b, a]), torch.stack([b * 0.9 + 0.1, a])])  # [3, Q=2, D]
    perm = link_queries(frames, torch.full((3, 2), 5.0))
    assert perm.tolist() == [[0, 1], [1, 0], [1, 0]]  # slot 0 always holds object a
    tracks = gather_tracks(frames, perm)
    assert torch.allclose(tracks[:, 0, 0], torch.tensor([1.0, 1.0, 1.0]))


def test_tracker_slot_without_object_is_claimed_by_an_entering_object():
    t = QueryTracker(momentum=0.5)
    a, bg, c = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.7, 0.7])
    t.step(torch.stack([a, bg]), torch.tensor([5.0, -5.0]))  # slot 1 has no object: memory follows its query
    t.step(torch.stack([a, c]), torch.tensor([5.0, 5.0]))  # an object enters in slot 1
    assert t.seen.tolist() == [True, True]
    assert torch.allclose(t.memory[1], torch.nn.functional.normalize(c, dim=0))


def test_descriptors_geometry_of_a_square():
    h, w = 8, 16
    m = square(h, w, 2, 4, 4) * 40 - 20  # a 4x4 square at rows 2..5, cols 4..7
    d = frame_descriptors(torch.zeros(1, 1, 3), torch.tensor([[0.0]]), m[None, None], [torch.ones(1, 2, h, w)])
    cx, cy, sx, sy, area, obj = d[0, 0, :6].tolist()
    assert cx == pytest.approx(6 / 16, abs=1e-4) and cy == pytest.approx(4 / 8, abs=1e-4)
    std_x = math.sqrt(sum(((x + 0.5) / w - 6 / 16) ** 2 for x in range(4, 8)) / 4)
    assert sx == pytest.approx(4 * std_x, abs=1e-4)
    assert area == pytest.approx(4 * math.sqrt(16 / (h * w)), abs=1e-4)
    assert obj == pytest.approx(0.5)
    assert d.shape == (1, 1, 6 + 3 + 2) and d[0, 0, 9:].tolist() == pytest.approx([1.0, 1.0], abs=1e-4)  # pooled features


def test_motion_resample_and_rescale():
    c = torch.tensor([0.1, 0.2, 0.4, 0.4])  # x centre over 4 frames, one track
    desc = torch.zeros(4, 1, 6)
    desc[:, 0, 0] = c
    m = with_motion(desc)  # [K, T, 8]
    assert m[0, :, 6].tolist() == pytest.approx([0.0, 1.0, 2.0, 0.0], abs=1e-5)  # 10 x displacement per frame
    r = resample(desc, 2)
    assert r[:, 0, 0].tolist() == pytest.approx([0.15, 0.4])
    inp = video_inputs([desc, desc[:2]], bins=2)  # two videos, resampled and padded
    assert inp.tokens.shape == (2, 1, 2, 8) and inp.valid.tolist() == [[True, True], [True, True]]
    assert inp.tokens[0, 0, 1, 6].item() == pytest.approx(10 * 0.25 / 2)  # per-frame units after binning
    g = rescale_geometry(torch.ones(1, 1, 7), fy=2.0, fx=1.0)
    assert g[0, 0].tolist() == pytest.approx([1, 2, 1, 2, math.sqrt(2), 1, 1])


def test_compose_is_union_of_selected_tracks_where_they_are_objects():
    masks = torch.tensor([[[[3.0, -3.0]], [[-3.0, 2.0]]]])  # [T=1, K=2, 1, 2]
    obj = torch.tensor([[4.0, 4.0]])
    out = compose(masks, obj, torch.tensor([1.0, -1.0]))  # only track 0 referred
    assert out.tolist() == [[[1.0, -1.0]]]  # pixel 1: max(min(-3, 1), min(2, -1)) = -1
    out = compose(masks, obj, torch.tensor([5.0, 5.0]))
    assert (out > 0).tolist() == [[[True, True]]]
    out = compose(masks, torch.tensor([[-1.0, 4.0]]), torch.tensor([5.0, -1.0]))  # track 0 not an object now
    assert (out > 0).tolist() == [[[False, False]]]
    assert presence_logit(obj, torch.tensor([-2.0, 0.5])).item() == 0.5


def tiny_objects_model():
    torch.manual_seed(0)
    return build_model(ModelConfig(vision="tiny", text="tiny", dim=16, num_heads=2, fpn_dims=(16, 16, 8), head="objects",
                                   obj_queries=3, obj_layers=2, obj_mask_dim=8, ref_layers=1, ref_bins=4))


def test_descriptors_colour_of_a_square():
    """ref_colour: the frames' mean RGB under the mask (frames at 4x the mask grid, as the model's input is),
    minus 0.5, after the pooled levels."""
    h, w = 8, 16
    m = square(h, w, 2, 4, 4) * 40 - 20  # a 4x4 square at rows 2..5, cols 4..7 of the mask grid
    frames = torch.full((1, 3, 4 * h, 4 * w), 0.5)
    frames[0, :, 8:24, 16:32] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]  # the square's pixels, 4x as many
    frames[0, :, 8:10, 16:32] = torch.tensor([0.1, 0.2, 0.9])[:, None, None]  # a blue band on its top eighth
    d = frame_descriptors(torch.zeros(1, 1, 3), torch.tensor([[0.0]]), m[None, None], [torch.ones(1, 2, h, w)], frames)
    assert d.shape == (1, 1, 6 + 3 + 2 + 3)
    expect = [(7 * 0.9 + 0.1) / 8 - 0.5, 0.2 - 0.5, (7 * 0.1 + 0.9) / 8 - 0.5]
    assert d[0, 0, 11:].tolist() == pytest.approx(expect, abs=1e-4)
    plain = frame_descriptors(torch.zeros(1, 1, 3), torch.tensor([[0.0]]), m[None, None], [torch.ones(1, 2, h, w)])
    assert torch.equal(d[..., :11], plain)  # the other channels do not change


def test_objects_model_with_colour_forward_backward_and_needs_frames():
    torch.manual_seed(0)
    cfg = ModelConfig(vision="tiny", text="tiny", dim=16, num_heads=2, fpn_dims=(16, 16, 8), head="objects",
                      obj_queries=3, obj_layers=2, obj_mask_dim=8, ref_layers=1, ref_bins=4, ref_colour=True)
    model = build_model(cfg)
    plain = tiny_objects_model()
    assert model.referrer.inp[0].in_features == plain.referrer.inp[0].in_features + 3
    frames = torch.rand(2, 6, 3, 64, 96)
    out = model(frames, ["the red circle", "two squares"])
    assert out.mask_logits.shape == (2, 6, 1, 16, 24) and out.extras["track_logits"].shape == (2, 3)
    (out.mask_logits.mean() + out.presence.sum()).backward()
    assert model.referrer.inp[0].weight.grad[:, -5:-2].abs().sum() > 0  # the colour channels reach the referrer
    feats = [f.unflatten(0, (2, 6)) for f in model.encode_frames(frames.flatten(0, 1))]
    with pytest.raises(ConfigError, match="ref_colour|colour"):
        model(None, ["the red circle", "two squares"], features=feats)
    with pytest.raises(ConfigError, match="ref_colour"):
        ModelConfig(head="single", ref_colour=True)


def test_objects_model_forward_backward():
    model = tiny_objects_model()
    out = model(torch.rand(2, 6, 3, 64, 96), ["the red circle", "two squares"])
    assert out.mask_logits.shape == (2, 6, 1, 16, 24) and out.presence.shape == (2,) and out.relevance.shape == (2, 6)
    assert out.extras["track_logits"].shape == (2, 3)
    (out.mask_logits.mean() + out.presence.sum() + out.relevance.mean()).backward()
    assert model.referrer.track_head[0].weight.grad is not None
    assert model.objects.mask_embed[0].weight.grad is not None
