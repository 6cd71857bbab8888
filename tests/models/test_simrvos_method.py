"""SimRVOS training method: weight table, parts, matching, parameter groups."""
import pytest
import torch

from rvos.data.batch import Batch
from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.mask import dice_loss, sigmoid_focal_loss
from rvos.methods.simrvos import SimRVOS, SimRVOSConfig
from rvos.models import ModelConfig, build_model

M, BX, NO = int(TargetKind.MASK), int(TargetKind.BOX), int(TargetKind.NONE)


def make_batch(kinds=((M, BX, NO), (M, M, M)), H=32, W=48) -> Batch:
    B, T = len(kinds), len(kinds[0])
    masks = torch.zeros(B, T, H, W)
    masks[..., 8:24, 12:36] = 1
    return Batch(frames=torch.rand(B, T, 3, H, W), target_kind=torch.tensor(kinds), masks=masks,
                 boxes=torch.tensor([12 / W, 8 / H, 36 / W, 24 / H]).repeat(B, T, 1),
                 present=torch.tensor(kinds) != NO, valid=torch.ones(B, T, dtype=torch.bool),
                 in_span=torch.ones(B, T, dtype=torch.bool), positive=torch.ones(B, dtype=torch.bool),
                 text=["the camel on the left", "a red car"][:B], video_ids=["a", "b"][:B], exp_ids=["0", "0"][:B],
                 frame_index=torch.arange(T).repeat(B, 1))


def tiny(head="single", **kw):
    return build_model(ModelConfig(vision="tiny", text="tiny", dim=32, head=head, vision_frozen=False, **kw))


def test_single_head_is_eq19_on_mask_frames():
    model = tiny().eval()
    method = SimRVOS(model, SimRVOSConfig())
    batch = make_batch()
    parts = method(batch)
    assert set(parts) == {"loss", "dice", "focal"}
    assert parts["loss"].item() == pytest.approx(5 * parts["dice"].item() + 2 * parts["focal"].item(), rel=1e-6)
    # recompute by hand: upsampled logits of the single query on the MASK frames only
    out = model(batch.frames, batch.text)
    up = torch.nn.functional.interpolate(out.mask_logits[:, :, 0], size=(32, 48), mode="bilinear")
    mask_frames = batch.target_kind == M
    assert parts["dice"].item() == pytest.approx(dice_loss(up, batch.masks, mask_frames).item(), rel=1e-5)
    assert parts["focal"].item() == pytest.approx(sigmoid_focal_loss(up, batch.masks, mask_frames).item(), rel=1e-5)


def test_downsampled_targets_option_and_backward():
    method = SimRVOS(tiny(), SimRVOSConfig(upsample_logits=False))
    parts = method(make_batch())
    parts["loss"].backward()
    assert method.model.fpn.out.weight.grad is not None and method.model.vision.stem[0].weight.grad is not None


def test_multi_head_parts_and_matching():
    method = SimRVOS(tiny("multi", num_queries=3), SimRVOSConfig())
    parts = method(make_batch())
    assert set(parts) == {"loss", "dice", "focal", "score", "box_l1", "giou"}
    w = {"dice": 5, "focal": 2, "score": 2, "box_l1": 5, "giou": 2}
    assert parts["loss"].item() == pytest.approx(sum(w[k] * parts[k].item() for k in w), rel=1e-5)
    parts["loss"].backward()
    for name, p in method.model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name


def test_box_only_batch_gives_zero_mask_terms():
    method = SimRVOS(tiny("multi", num_queries=2), SimRVOSConfig())
    parts = method(make_batch(kinds=((BX, BX, NO),)))
    assert parts["dice"].item() == 0 and parts["focal"].item() == 0 and parts["box_l1"].item() > 0


def test_weight_table_errors():
    with pytest.raises(ConfigError, match="box"):
        SimRVOS(tiny(), SimRVOSConfig(weights={"dice": 5, "focal": 2, "giou": 2}))
    with pytest.raises(ConfigError, match="unknown parts"):
        SimRVOS(tiny(), SimRVOSConfig(weights={"dice": 5, "mil": 1}))
    # a score term on the single head is computable
    parts = SimRVOS(tiny(), SimRVOSConfig(weights={"dice": 5, "focal": 2, "score": 1}))(make_batch())
    assert parts["score"].item() > 0


def test_parameter_groups():
    method = SimRVOS(build_model(ModelConfig(vision="tiny", text="tiny", dim=32)))  # encoders frozen
    groups = method.parameter_groups(5e-5, 2.5e-5)
    assert [g["name"] for g in groups] == ["head"] and groups[0]["lr"] == 5e-5
    method = SimRVOS(tiny(text_frozen=False))
    groups = {g["name"]: g for g in method.parameter_groups(5e-5, 2.5e-5)}
    assert groups["backbone"]["lr"] == 2.5e-5
    n_enc = sum(1 for _ in method.model.vision.parameters()) + sum(1 for _ in method.model.text.parameters())
    assert len(groups["backbone"]["params"]) == n_enc
    assert len(groups["backbone"]["params"]) + len(groups["head"]["params"]) == len(list(method.parameters()))
