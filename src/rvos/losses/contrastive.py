"""Bi-level contrastive learning, BLCL (WRVOS section III-D, eq. 10-18).

Foreground / background sets (eq. 10-13), per frame of a clip, at the resolution (h, w) of the BLCL feature H:
- mask frame: the ground-truth mask area-downsampled to (h, w); a cell is foreground where at least half of it
  is object, background elsewhere (eq. 10, 11 on "the downsampled mask");
- box frame, pseudo masks on: C = sigmoid(M) inside the rasterised box, 0 outside (M: the frame's own prediction,
  eq. 6, detached: a pseudo label is not trained through); foreground where C > d_th, background where
  C < 1 - d_th (so everything outside the box), the rest ambiguous and ignored (eq. 12, 13);
- box frame, pseudo masks off (the method's first epoch; Table VI without "Pseudo"): our reading is that only
  what the box alone says is used: outside the box is background, inside is ignored;
- a box frame whose object is not visible (present False): every cell is background; NONE and padding frames:
  no cell.

Loss (eq. 14): L(Q, K+ | K-) = mean over k in K+ u K- of BCE(sigmoid(Q . k), [k in K+]); the paper writes the
plain dot product (no normalisation, no temperature): that is the default; `normalize` (cosine) and
`temperature` (Q . k / temperature) are options. Per clip:
- L_LV (eq. 15): Q = the sentence feature R^s, K+ = all foreground cells of all frames, K- = all background cells;
- L_CC_fg (eq. 16): Q = H_fg^g, the mean of the clip's foreground cells pooled over all frames (our reading of
  "averaged foreground features over all frames"), K+ = foreground, K- = background; L_CC_bg (eq. 17) the same
  with the roles swapped. Anchors are not detached (the paper says nothing; `detach_anchors` is an option).
A clip counts for a term where the term is defined (L_LV: some cell; L_CC_fg: a foreground cell, L_CC_bg: a
background cell); each part is the mean over the clips that count, 0 (connected to the graph) when none does.
Parts "blcl_lv", "blcl_cc_fg", "blcl_cc_bg" are unweighted; eq. 18 is their sum.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.box_mil import box_mask


def sigmoid_contrast(query: torch.Tensor, keys: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Eq. 14 for one query: query [C], keys [K, C], positive bool [K] -> mean BCE over the K keys."""
    logits = keys @ query  # [K]
    return F.binary_cross_entropy_with_logits(logits, positive.to(logits.dtype))


def blcl_sets(size: tuple[int, int], target_kind: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
              valid: torch.Tensor, present: Optional[torch.Tensor] = None,
              pred_logits: Optional[torch.Tensor] = None, use_pseudo: bool = True, d_th: float = 0.9
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground / background cells (module docstring): size (h, w) of H; target_kind long [B,T]; masks
    [B,T,H,W] {0,1}; boxes [B,T,4] normalised xyxy; valid, present bool [B,T]; pred_logits [B,T,h',w'] the
    frames' own mask logits (needed when use_pseudo) -> (fg, bg) bool [B,T,h,w], disjoint."""
    if not 0.5 <= d_th < 1:
        raise ConfigError(f"BLCL threshold d_th must be in [0.5, 1), got {d_th}")
    B, T = target_kind.shape
    h, w = size
    valid = valid.to(torch.bool)
    present = torch.ones_like(valid) if present is None else present.to(torch.bool)
    is_mask = (valid & (target_kind == int(TargetKind.MASK)))[..., None, None]
    is_box = (valid & (target_kind == int(TargetKind.BOX)))[..., None, None]

    small = F.interpolate(masks.reshape(B * T, 1, *masks.shape[-2:]).float(), size=(h, w), mode="area")
    gt_fg = small.reshape(B, T, h, w) >= 0.5
    inside = box_mask(boxes, (h, w), present) > 0  # [B, T, h, w]
    if use_pseudo:
        if pred_logits is None:
            raise ConfigError("blcl_sets: use_pseudo needs pred_logits (the frames' own mask logits)")
        p = pred_logits.detach().reshape(B * T, 1, *pred_logits.shape[-2:]).float()
        if p.shape[-2:] != (h, w):
            p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
        score = p.sigmoid().reshape(B, T, h, w) * inside  # C(M_ij, B_GT), 0 outside the box
        box_fg, box_bg = score > d_th, score < 1 - d_th
    else:
        box_fg, box_bg = torch.zeros_like(inside), ~inside
    fg = (is_mask & gt_fg) | (is_box & box_fg)
    bg = (is_mask & ~gt_fg) | (is_box & box_bg)
    return fg, bg


def blcl_loss(H: torch.Tensor, sentence: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor,
              normalize: bool = False, temperature: float = 1.0, detach_anchors: bool = False
              ) -> dict[str, torch.Tensor]:
    """H [B,T,C,h,w], sentence [B,C] (R^s in H's space), fg / bg bool [B,T,h,w] -> {"blcl_lv", "blcl_cc_fg",
    "blcl_cc_bg"} (module docstring)."""
    B, T, C, h, w = H.shape
    if sentence.shape != (B, C):
        raise ConfigError(f"blcl_loss: sentence must be [B, C] = [{B}, {C}] like H, got {tuple(sentence.shape)}")
    if fg.shape != (B, T, h, w) or bg.shape != (B, T, h, w):
        raise ConfigError(f"blcl_loss: fg/bg must be [{B}, {T}, {h}, {w}], got {tuple(fg.shape)}/{tuple(bg.shape)}")
    if (fg & bg).any():
        raise ConfigError("blcl_loss: a cell is both foreground and background; the sets must be disjoint")
    if temperature <= 0:
        raise ConfigError(f"blcl_loss: temperature must be > 0, got {temperature}")
    keys = H.permute(0, 1, 3, 4, 2).reshape(B, T * h * w, C)  # [B, K, C], every cell of the clip
    query = sentence
    if normalize:
        keys, query = F.normalize(keys, dim=-1), F.normalize(query, dim=-1)
    fg, bg = fg.reshape(B, -1).to(H.dtype), bg.reshape(B, -1).to(H.dtype)  # [B, K]
    used = fg + bg
    n_fg, n_bg, n = fg.sum(1), bg.sum(1), used.sum(1)  # [B]

    def term(q: torch.Tensor, pos: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """q [B, C] -> mean over clips with counts > 0 of eq. 14 over the used cells, pos the positive cells."""
        logits = torch.einsum("bkc,bc->bk", keys, q) / temperature  # [B, K]
        bce = F.binary_cross_entropy_with_logits(logits, pos, reduction="none")
        per_clip = (bce * used).sum(1) / n.clamp(min=1)  # [B]
        ok = counts > 0
        return per_clip[ok].mean() if ok.any() else H.sum() * 0.0 + sentence.sum() * 0.0

    def anchor(weight: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        a = torch.einsum("bkc,bk->bc", keys, weight) / count.clamp(min=1)[:, None]  # [B, C] mean of the set
        a = F.normalize(a, dim=-1) if normalize else a
        return a.detach() if detach_anchors else a

    return {"blcl_lv": term(query, fg, n),
            "blcl_cc_fg": term(anchor(fg, n_fg), fg, n_fg),
            "blcl_cc_bg": term(anchor(bg, n_bg), bg, n_bg)}
