"""ModelConfig.fusion_stride=16: language fused with C5 upsampled + C4; every head and option runs and learns."""
import pytest
import torch

from model_helpers import TEXTS, tiny
from rvos.errors import ConfigError
from rvos.models import ModelConfig


def test_default_is_the_papers_stride_32():
    assert ModelConfig().fusion_stride == 32
    assert tiny().fusion.fine_proj is None
    with pytest.raises(ConfigError, match="fusion_stride"):
        ModelConfig(fusion_stride=8)


@pytest.mark.parametrize("opts", [dict(head="single"), dict(head="multi", num_queries=3),
                                  dict(head="single", r2=True, blcl=True), dict(head="single", temporal_layers=1)])
def test_forward_backward_at_stride_16(opts):
    model = tiny(fusion_stride=16, **opts).train()
    out = model(torch.rand(2, 3, 3, 64, 96), TEXTS)  # C4 of 64x96 is 4x6, C5 2x3
    q = opts.get("num_queries", 1)
    assert out.mask_logits.shape == (2, 3, q, 16, 24)
    assert out.extras["fused_visual"].shape == (2, 3, 32, 4, 6)
    loss = out.mask_logits.sum() + (out.presence.sum() if out.presence is not None else 0)
    loss.backward()
    for part in (model.fusion.fine_proj, model.fusion.vis_proj):  # both C4 and C5 reach the output
        w = part[0].weight
        assert w.grad is not None and w.grad.abs().sum() > 0


def test_c4_changes_the_output_only_at_stride_16():
    frames = torch.rand(1, 2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    for stride in (32, 16):
        model = tiny(fusion_stride=stride).eval()
        feats = [f.reshape(1, 2, *f.shape[1:]) for f in model.encode_frames(frames.flatten(0, 1))]
        changed = [f.clone() for f in feats]
        changed[2] += 1.0  # C4 only; the FPN also reads C4, so compare the fused tokens
        with torch.no_grad():
            a = model(None, ["a red car"], features=feats).extras["fused_visual"]
            b = model(None, ["a red car"], features=changed).extras["fused_visual"]
        assert torch.allclose(a, b) == (stride == 32)
