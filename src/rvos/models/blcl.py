"""The BLCL branch of WRVOS (section III-D, Fig. 2 b/c): the contrastive feature H and the enhanced feature F_ENH.

H^t = project(F_FPN^t): a few convolutions into the sentence feature's space (so R^s . H_ij is defined), trained
by the BLCL losses (rvos.losses.contrastive). F_ENH^t = fuse(cat(conv(F_FPN^t), H^t)): F_FPN through one 3x3
convolution, concatenated with H, then two 1x1 convolutions back to the width the dynamic filters read (the paper
does not give the kernel sizes; a 3x3 over the hidden + D concatenated channels at stride 4 tripled the branch's
cost on CPU, and the 3x3 convolutions before it already give every F_ENH cell a neighbourhood). The masks of
SimRVOS+LGCFS+BLCL (eq. 6, 7) are the filters applied to F_ENH instead of F_FPN, at training and inference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def _conv_gn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.GroupNorm(min(8, cout), cout),
                         nn.ReLU(inplace=True))


@dataclass
class BLCLFeatures:
    h: torch.Tensor  # [N, embed_dim, h, w], the contrastive feature H
    enhanced: torch.Tensor  # [N, out_dim, h, w], F_ENH


class BLCLBranch(nn.Module):
    def __init__(self, in_dim: int, embed_dim: int, hidden: int = 32, out_dim: int | None = None):
        """in_dim: channels of F_FPN; embed_dim: channels of H (= the projected sentence feature's width);
        hidden: width of the intermediate convolutions; out_dim: channels of F_ENH (default in_dim, so the
        dynamic filters' parameter count is unchanged)."""
        super().__init__()
        out_dim = in_dim if out_dim is None else out_dim
        self.project = nn.Sequential(_conv_gn_relu(in_dim, hidden), nn.Conv2d(hidden, embed_dim, 1))  # -> H
        self.lateral = _conv_gn_relu(in_dim, hidden)  # F_FPN through one convolution
        self.fuse = nn.Sequential(_conv_gn_relu(hidden + embed_dim, hidden, k=1), nn.Conv2d(hidden, out_dim, 1))
        self.embed_dim, self.out_dim = embed_dim, out_dim

    def forward(self, f_fpn: torch.Tensor) -> BLCLFeatures:
        """f_fpn [N, in_dim, h, w] -> H [N, embed_dim, h, w] and F_ENH [N, out_dim, h, w]."""
        h = self.project(f_fpn)
        enhanced = self.fuse(torch.cat([self.lateral(f_fpn), h], dim=1))  # [N, hidden + embed_dim, h, w] -> out
        return BLCLFeatures(h=h, enhanced=enhanced)
