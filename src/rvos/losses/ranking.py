"""Temporal segment ranking (WSRVOS): a mask overlaps its near frames more than its far ones.

For frames t < l < n of a clip (in video order, so l is nearer to t than n is):

  L_rank = mean over (t, l, n) of relu(margin - (IoU(m_t, m_l) - IoU(m_t, m_n)))

with the soft IoU of probability maps, sum(a b) / (sum(a) + sum(b) - sum(a b)), so the loss has a gradient (the
public code binarises the masks first, which leaves it none). A positive margin demands that near frames overlap
more by at least that much; the public code's epsilon = 0.1 is a tolerance, margin = -0.1: only a far frame that
overlaps more than a near one by over 0.1 is penalised (a still object, whose IoUs are all 1, costs nothing).
"""
from __future__ import annotations

import torch


def soft_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft IoU of probability maps [..., H, W] -> [...]; two empty maps give 0."""
    inter = (a * b).flatten(-2).sum(-1)
    union = a.flatten(-2).sum(-1) + b.flatten(-2).sum(-1) - inter
    return inter / (union + eps)


def temporal_ranking_loss(probs: torch.Tensor, valid: torch.Tensor, order: torch.Tensor | None = None,
                          margin: float = -0.1) -> tuple[torch.Tensor, int]:
    """probs [B, T, H, W] in [0, 1], valid bool [B, T], order [B, T] frame indices (None: clip order) ->
    (mean loss over all valid triples, number of triples). No triple (T < 3): 0 connected to the graph."""
    b_, t_ = probs.shape[:2]
    terms = []
    for b in range(b_):
        idx = torch.nonzero(valid[b]).flatten()
        if order is not None:
            idx = idx[torch.argsort(order[b, idx])]
            pos = order[b, idx]
            keep = torch.ones_like(idx, dtype=torch.bool)
            keep[1:] = pos[1:] != pos[:-1]  # repeated frames (padding of short videos) are one frame
            idx = idx[keep]
        m = probs[b, idx]  # [n, H, W] in time order
        n = m.shape[0]
        if n < 3:
            continue
        iou = soft_iou(m[:, None], m[None])  # [n, n]
        i, j, k = torch.meshgrid(torch.arange(n), torch.arange(n), torch.arange(n), indexing="ij")
        tri = (i < j) & (j < k)
        near, far = iou[i[tri], j[tri]], iou[i[tri], k[tri]]
        terms.append(torch.relu(margin - (near - far)))
    if not terms:
        return probs.sum() * 0.0, 0
    flat = torch.cat(terms)
    return flat.mean(), int(flat.numel())
