"""Heads: language-guided dynamic filters per frame (eq. 3) and masks by dynamic convolution (eq. 5).

The dynamic convolution is a small MLP of 1x1 convs (CondInst / ReferFormer): `dyn_layers` layers of width
`dyn_hidden`, ReLU between, 1 output channel; its weights and biases are the P filter parameters a head predicts
per frame and query. `SingleHead` is SimRVOS (one filter per frame); `MultiQueryHead` is ReferFormer-style
(N sentence-conditioned queries, each with a filter, a score and a box per frame).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rvos.models.fusion import Fused


def dynamic_layer_shapes(in_ch: int, hidden: int, layers: int) -> list[tuple[int, int]]:
    """(out, in) of each dynamic 1x1 conv."""
    dims = [in_ch] + [hidden] * (layers - 1) + [1]
    return [(dims[i + 1], dims[i]) for i in range(layers)]


def num_dynamic_params(in_ch: int, hidden: int, layers: int) -> int:
    return sum(o * i + o for o, i in dynamic_layer_shapes(in_ch, hidden, layers))


def apply_dynamic_mlp(x: torch.Tensor, params: torch.Tensor, shapes: list[tuple[int, int]]) -> torch.Tensor:
    """x [N, Q or 1, C, HW] (pixel features, shared or per query); params [N, Q, P] -> logits [N, Q, HW]."""
    n, q, _ = params.shape
    i = 0
    for k, (o, c) in enumerate(shapes):
        w = params[..., i : i + o * c].reshape(n, q, o, c)
        i += o * c
        b = params[..., i : i + o].reshape(n, q, o, 1)
        i += o
        x = torch.matmul(w, x) + b  # [N, Q, o, HW]
        if k < len(shapes) - 1:
            x = F.relu(x)
    return x[:, :, 0]


class MLP(nn.Sequential):
    def __init__(self, dims: list[int]):
        layers: list[nn.Module] = []
        for k in range(len(dims) - 1):
            layers.append(nn.Linear(dims[k], dims[k + 1]))
            if k < len(dims) - 2:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _DynamicHead(nn.Module):
    """Shared dynamic-convolution part. `coords`: add 2 channels of coordinates relative to each query's box
    centre (needs boxes); otherwise the filters read the mask feature alone."""

    def __init__(self, mask_dim: int, hidden: int, layers: int, coords: bool):
        super().__init__()
        self.coords = coords
        self.shapes = dynamic_layer_shapes(mask_dim + 2 * coords, hidden, layers)
        self.num_params = num_dynamic_params(mask_dim + 2 * coords, hidden, layers)

    def mask_logits(self, mask_features: torch.Tensor, filters: torch.Tensor, boxes: torch.Tensor | None = None):
        """mask_features [N, C_m, H, W], filters [N, Q, P] (any frame's: LGCFS applies frame tau's filters to frame
        t's feature), boxes [N, Q, 4] cxcywh -> [N, Q, H, W]."""
        n, c, h, w = mask_features.shape
        x = mask_features.flatten(2)[:, None]  # [N, 1, C, HW]
        if self.coords:
            ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h
            xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w
            grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), 0).reshape(1, 1, 2, h * w)
            centre = boxes[..., :2].detach()[..., None]  # [N, Q, 2, 1]
            rel = grid - centre  # [N, Q, 2, HW]
            x = torch.cat([x.expand(-1, rel.shape[1], -1, -1), rel], dim=2)
        return apply_dynamic_mlp(x, filters, self.shapes).reshape(n, -1, h, w)


class LanguageVector(nn.Module):
    """R^s + sum_i lambda_i R_hat_i (the argument of G_MLP in eq. 3); lambda = softmax over real words of a
    linear map of R_hat."""

    def __init__(self, dim: int):
        super().__init__()
        self.word_weight = nn.Linear(dim, 1)

    def forward(self, fused: Fused) -> torch.Tensor:
        logit = self.word_weight(fused.words)[..., 0].masked_fill(fused.pad_mask, float("-inf"))  # [N, L]
        lam = logit.softmax(-1)
        return fused.sentence + (lam[..., None] * fused.words).sum(1)  # [N, D]


class SingleHead(_DynamicHead):
    """SimRVOS eq. 3: f_theta^t = G_MLP(R^s + sum_i lambda_i R_hat_i^t), lambda = softmax over words of a linear
    map of R_hat. A linear score on the same vector says whether the referred object is in the frame."""

    def __init__(self, dim: int, mask_dim: int, hidden: int = 8, layers: int = 3):
        super().__init__(mask_dim, hidden, layers, coords=False)
        self.language = LanguageVector(dim)
        self.filter_mlp = MLP([dim, dim, self.num_params])
        self.score = nn.Linear(dim, 1)

    def forward(self, fused: Fused):
        v = self.language(fused)  # [N, D]
        return self.filter_mlp(v)[:, None], self.score(v), None  # filters [N,1,P], scores [N,1], no boxes


class MultiQueryHead(_DynamicHead):
    """N learned query embeddings plus the frame's language vector (the eq. 3 input), refined per frame by a
    small transformer decoder over the frame's language-aware feature F_hat (ReferFormer-style)."""

    def __init__(self, dim: int, mask_dim: int, num_queries: int = 5, num_layers: int = 2, num_heads: int = 4,
                 hidden: int = 8, layers: int = 3, rel_coords: bool = True):
        super().__init__(mask_dim, hidden, layers, coords=rel_coords)
        self.language = LanguageVector(dim)
        self.query = nn.Embedding(num_queries, dim)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True), num_layers
        )
        self.filter_mlp = MLP([dim, dim, self.num_params])
        self.score = nn.Linear(dim, 1)
        self.box = MLP([dim, dim, 4])

    def forward(self, fused: Fused):
        tgt = self.query.weight[None] + self.language(fused)[:, None]  # [N, Q, D]
        memory = fused.visual.flatten(2).transpose(1, 2) + fused.pos  # [N, h*w, D]
        hs = self.decoder(tgt, memory)  # [N, Q, D]
        boxes = self.box(hs).sigmoid()  # [N, Q, 4] cxcywh normalised
        return self.filter_mlp(hs), self.score(hs)[..., 0], boxes
