"""ModelConfig.temporal_layers: tiny forward/backward, clips never mix, frames of a clip do, frame-index embedding."""
import pytest
import torch

from model_helpers import TEXTS, tiny
from rvos.errors import ConfigError
from rvos.models import ModelConfig
from rvos.models.temporal import TemporalContext


def test_off_by_default():
    assert ModelConfig().temporal_layers == 0
    assert tiny().temporal is None


@pytest.mark.parametrize("head", ["single", "multi"])
def test_forward_backward(head):
    model = tiny(head=head, num_queries=3, temporal_layers=2)
    model.train()
    out = model(torch.rand(2, 3, 3, 64, 96), TEXTS)
    q = 1 if head == "single" else 3
    assert out.mask_logits.shape == (2, 3, q, 16, 24)
    assert out.extras["fused_visual"].shape == (2, 3, 32, 2, 3)
    out.mask_logits.sum().backward()
    params = dict(model.temporal.named_parameters())
    assert len(params) > 2
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_clips_do_not_mix_but_frames_of_a_clip_do():
    model = tiny(temporal_layers=1).eval()
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(2, 3, 3, 64, 96, generator=g)
    with torch.no_grad():
        ref = model(frames, TEXTS).mask_logits
        other = frames.clone()
        other[1] = torch.rand(3, 3, 64, 96, generator=g)  # change every frame of clip 1
        changed_clip1 = model(other, TEXTS).mask_logits
        within = frames.clone()
        within[0, 2] = torch.rand(3, 64, 96, generator=g)  # change the last frame of clip 0
        changed_frame = model(within, TEXTS).mask_logits
    assert torch.allclose(changed_clip1[0], ref[0], atol=1e-5)  # clip 0 is blind to clip 1
    assert not torch.allclose(changed_clip1[1], ref[1], atol=1e-3)
    assert (changed_frame[0, 0] - ref[0, 0]).abs().max() > 1e-4  # frame 0 reads frame 2 of its clip
    assert torch.allclose(changed_frame[1], ref[1], atol=1e-5)


def test_a_clip_alone_equals_the_clip_in_a_batch():
    model = tiny(temporal_layers=1).eval()
    frames = torch.rand(2, 4, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        both = model(frames, TEXTS).mask_logits
        alone = model(frames[1:], TEXTS[1:]).mask_logits
    assert torch.allclose(both[1], alone[0], atol=1e-5)


def test_frame_index_embedding_breaks_time_symmetry():
    torch.manual_seed(0)
    mod = TemporalContext(16, num_heads=2, num_layers=1, max_frames=4).eval()
    x = torch.randn(3, 16, 2, 2)  # one clip of T=3 frames, h=w=2
    pos = torch.randn(1, 4, 16)
    perm = [1, 0, 2]
    with torch.no_grad():
        mod.frame_embed.weight.zero_()  # without the frame index, attention is equivariant to frame order
        assert torch.allclose(mod(x[perm], pos, 1, 3), mod(x, pos, 1, 3)[perm], atol=1e-5)
        mod.frame_embed.weight.normal_()
        assert not torch.allclose(mod(x[perm], pos, 1, 3), mod(x, pos, 1, 3)[perm], atol=1e-3)


def test_errors():
    with pytest.raises(ConfigError, match="temporal_layers"):
        ModelConfig(temporal_layers=-1)
    mod = TemporalContext(16, num_heads=2, num_layers=1, max_frames=2)
    with pytest.raises(ConfigError, match="3 frames"):
        mod(torch.zeros(3, 16, 2, 2), torch.zeros(1, 4, 16), 1, 3)
    with pytest.raises(ConfigError, match="B=2"):
        mod(torch.zeros(3, 16, 2, 2), torch.zeros(1, 4, 16), 2, 2)
