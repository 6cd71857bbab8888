"""The BLCL branch: H in the sentence space, F_ENH at the filters' width, built from both F_FPN and H."""
import torch

from rvos.losses.contrastive import blcl_loss
from rvos.models.blcl import BLCLBranch


def test_shapes_and_default_width():
    torch.manual_seed(0)
    branch = BLCLBranch(in_dim=8, embed_dim=16, hidden=8)
    out = branch(torch.randn(6, 8, 10, 12))
    assert out.h.shape == (6, 16, 10, 12)
    assert out.enhanced.shape == (6, 8, 10, 12)  # same width as F_FPN: the dynamic filters' size is unchanged
    assert BLCLBranch(8, 16, out_dim=4)(torch.randn(1, 8, 3, 3)).enhanced.shape == (1, 4, 3, 3)


def test_enhanced_feature_reads_h_and_blcl_trains_the_projection():
    torch.manual_seed(0)
    branch = BLCLBranch(in_dim=4, embed_dim=8, hidden=8)
    f = torch.randn(2, 4, 6, 6)
    out = branch(f)
    # F_ENH depends on H: zeroing H's last conv changes F_ENH
    with torch.no_grad():
        branch.project[1].weight.zero_()
        branch.project[1].bias.zero_()
    assert not torch.allclose(branch(f).enhanced, out.enhanced)
    # gradients: BLCL reaches the projection and F_FPN; a mask loss on F_ENH reaches projection and lateral path
    branch = BLCLBranch(in_dim=4, embed_dim=8, hidden=8)
    f = torch.randn(1, 2, 4, 6, 6, requires_grad=True)  # [B, T, C, h, w]
    out = branch(f.flatten(0, 1))
    H = out.h.reshape(1, 2, 8, 6, 6)
    fg = torch.zeros(1, 2, 6, 6, dtype=torch.bool)
    fg[..., 2:4, 2:4] = True
    parts = blcl_loss(H, torch.randn(1, 8), fg, ~fg)
    sum(parts.values()).backward(retain_graph=True)
    assert branch.project[1].weight.grad.abs().sum() > 0 and f.grad.abs().sum() > 0
    assert branch.fuse[1].weight.grad is None  # BLCL does not train the fusion
    out.enhanced.square().mean().backward()
    assert branch.fuse[1].weight.grad.abs().sum() > 0 and branch.lateral[0].weight.grad.abs().sum() > 0
