"""SimRVOS training (WRVOS paper, section III-B, loss eq. 19): mask loss 5 * dice + 2 * focal on frames with a
mask target. The multi-query head adds ReferFormer's terms on the Hungarian-matched query: a score loss
(sigmoid focal; the matched query should fire where the target is visible, every other query never) and box
L1 (5) + GIoU (2) on frames with a visible box.

Resolution: mask logits (stride 4) are upsampled bilinearly to the target size, as ReferFormer does, so the
loss judges boundaries at the annotation's resolution; `upsample_logits=False` area-downsamples the targets
to stride 4 instead (16x fewer loss pixels, soft targets), for cheap CPU runs.
A frame counts when `batch.valid`; mask terms use frames whose `target_kind == MASK`. A batch without such
frames gives mask terms of 0 (no signal, e.g. box-only clips). A weight on a part the model cannot produce
(box terms without a box head) or an unknown part is a ConfigError at construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from rvos.data.batch import Batch
from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, elementwise_giou
from rvos.losses.mask import dice_loss, focal_per_frame, sigmoid_focal_loss
from rvos.losses.matching import HungarianMatcher, MatchCosts
from rvos.models.output import RVOSOutput

PARTS = ("dice", "focal", "score", "box_l1", "giou")
DEFAULT_WEIGHTS = {
    "single": {"dice": 5.0, "focal": 2.0},  # eq. 19
    "multi": {"dice": 5.0, "focal": 2.0, "score": 2.0, "box_l1": 5.0, "giou": 2.0},  # + ReferFormer's terms
}


@dataclass
class SimRVOSConfig:
    weights: Optional[dict[str, float]] = None  # None -> DEFAULT_WEIGHTS of the model's head
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    upsample_logits: bool = True
    match: MatchCosts = field(default_factory=MatchCosts)


class SimRVOS(nn.Module):
    def __init__(self, model: nn.Module, cfg: SimRVOSConfig | None = None):
        super().__init__()
        from rvos.methods.objects import check_model

        check_model(model, "simrvos (and the methods built on it)")
        self.model = model
        self.cfg = cfg or SimRVOSConfig()
        head = getattr(getattr(model, "config", None), "head", "single")
        self.multi = head == "multi"
        self.weights = dict(self.cfg.weights if self.cfg.weights is not None else DEFAULT_WEIGHTS[head])
        unknown = sorted(set(self.weights) - set(PARTS))
        if unknown:
            raise ConfigError(f"SimRVOS weights: unknown parts {unknown}; known parts: {list(PARTS)}")
        if not self.multi and any(self.weights.get(k, 0) for k in ("box_l1", "giou")):
            raise ConfigError("SimRVOS weights: box_l1/giou need boxes, which only model.head='multi' predicts")
        self.matcher = HungarianMatcher(self.cfg.match, self.cfg.focal_alpha, self.cfg.focal_gamma)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.model(None if batch.features is not None else batch.frames, batch.text, features=batch.features)
        parts = self.losses(out, batch)
        return self.combine(parts)

    def combine(self, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [k for k, w in self.weights.items() if w and k not in parts]
        if missing:
            raise ConfigError(f"loss parts {missing} are weighted but were not computed")
        total = sum(w * parts[k] for k, w in self.weights.items() if w)
        return {"loss": total, **parts}

    def _resize(self, logits: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logits [B, T, Q, h, w], masks [B, T, H, W] -> both at one resolution ([B,T,Q,.,.], [B,T,.,.])."""
        b, t, q, h, w = logits.shape
        if self.cfg.upsample_logits:
            up = F.interpolate(logits.flatten(0, 1), size=masks.shape[-2:], mode="bilinear", align_corners=False)
            return up.reshape(b, t, q, *masks.shape[-2:]), masks
        small = F.interpolate(masks.flatten(0, 1)[:, None].float(), size=(h, w), mode="area")
        return logits, small.reshape(b, t, h, w)

    def losses(self, out: RVOSOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Unweighted parts. Other methods (WRVOS) reuse them and add their own terms."""
        valid = batch.valid.bool()
        mask_frames = valid & (batch.target_kind == int(TargetKind.MASK))
        known = valid & ((batch.target_kind != int(TargetKind.NONE)) | ~batch.positive[:, None])
        present = batch.present.bool() & batch.positive[:, None]
        logits, masks = self._resize(out.mask_logits, batch.masks)
        a, g = self.cfg.focal_alpha, self.cfg.focal_gamma
        if self.multi:
            idx = self._match(out, logits, masks, mask_frames, present, known, batch)  # [B]
        else:
            idx = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        ar = torch.arange(logits.shape[0], device=logits.device)
        chosen = logits[ar, :, idx]  # [B, T, h, w]
        parts = {"dice": dice_loss(chosen, masks, mask_frames),
                 "focal": sigmoid_focal_loss(chosen, masks, mask_frames, a, g)}
        if "score" in self.weights:
            target = torch.zeros_like(out.scores)  # [B, T, Q]
            target[ar, :, idx] = present.to(target.dtype)
            per_frame = focal_per_frame(out.scores[..., None, None], target[..., None, None], a, g).sum(-1)  # [B, T]
            parts["score"] = per_frame[known].mean() if known.any() else out.scores.sum() * 0.0
        if self.multi and ("box_l1" in self.weights or "giou" in self.weights):
            box_frames = present & valid & (batch.target_kind != int(TargetKind.NONE))
            pred = out.boxes[ar, :, idx]  # [B, T, 4] cxcywh
            if box_frames.any():
                p, tgt = pred[box_frames], batch.boxes[box_frames]  # [n, 4]
                parts["box_l1"] = (p - box_xyxy_to_cxcywh(tgt)).abs().sum(-1).mean()
                parts["giou"] = (1 - elementwise_giou(box_cxcywh_to_xyxy(p), tgt)).mean()
            else:
                parts["box_l1"] = parts["giou"] = pred.sum() * 0.0
        return parts

    def _match(self, out, logits, masks, mask_frames, present, known, batch) -> torch.Tensor:
        idx = []
        box_frames = present & (batch.target_kind != int(TargetKind.NONE))
        for b in range(logits.shape[0]):
            rows, _ = self.matcher(logits[b], out.scores[b], out.boxes[b], masks[b][None], mask_frames[b][None],
                                   present[b][None], known[b][None], batch.boxes[b][None], box_frames[b][None])
            idx.append(int(rows[0]))
        return torch.tensor(idx, dtype=torch.long, device=logits.device)

    def parameter_groups(self, lr: float, backbone_lr: float, text_lr: Optional[float] = None) -> list[dict]:
        """AdamW groups: the pretrained encoders (vision, text) at backbone_lr, everything else at lr; with
        `text_lr` the text encoder gets its own group at that rate. Frozen parameters are left out; empty groups are
        dropped."""
        text = {id(p) for p in self.model.text.parameters()} if text_lr is not None else set()
        enc = {id(p) for m in (self.model.vision, self.model.text) for p in m.parameters()} - text
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [{"name": "backbone", "params": [p for p in trainable if id(p) in enc], "lr": backbone_lr},
                  {"name": "text", "params": [p for p in trainable if id(p) in text], "lr": text_lr},
                  {"name": "head", "params": [p for p in trainable if id(p) not in enc and id(p) not in text], "lr": lr}]
        return [g for g in groups if g["params"]]
