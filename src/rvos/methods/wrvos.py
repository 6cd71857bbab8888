"""WRVOS training (section III-C, III-D, IV): SimRVOS + box MIL + LGCFS + BLCL, total loss eq. 21.

  L = sum_t (L_SEG^t + L_LGCFS^t) + L_BLCL                                                        (eq. 21)
  L_SEG^t  = 5 dice + 2 focal on a MASK frame (eq. 19), L_MIL(M^t, B^t) on a BOX frame (eq. 20)
  L_LGCFS^t: frame t segmented with every other frame's filters, same losses (eq. 7-9; rvos.losses.lgcfs)
  L_BLCL   = L_LV + L_CC_fg + L_CC_bg on the BLCL feature H (eq. 15-18; rvos.losses.contrastive)

Weight table (DEFAULT_WEIGHTS; every part a name, the total is sum(weight * part)):
- the paper's: dice 5, focal 2 (eq. 19); lgcfs_dice 5, lgcfs_focal 2 ("the weights of loss functions in our LGCFs
  are consistent with that in L_SEG"); blcl_lv, blcl_cc_fg, blcl_cc_bg 1 each (eq. 18, 21).
- our reading: mil 1 and lgcfs_mil 1 (eq. 20 writes L_MIL with no weight; BoxInst's projection term has weight 1);
  the multi-query head's score 2, box_l1 5, giou 2 are ReferFormer's (as in SimRVOS).
Reduction (our reading of eq. 21's sum over t, `seg_reduction="sum"`, default): per clip, L_SEG is summed over its
target frames, like LGCFS (which sums over t and tau != t), then averaged over the B clips. "mean" averages L_SEG
over the target frames of the batch instead, exactly as SimRVOS does (WRVOS with LGCFS and BLCL off is then SimRVOS
plus MIL on box frames).

Switches (Tables I, III-VI): `lgcfs` / `blcl` / `blcl_lv` / `blcl_cc` / `pseudo` flags, or a weight of 0: a part
that is switched off is neither computed nor returned (dice and focal always are, as in SimRVOS).
`lgcfs_variant`: first_frame / first_frame_others_avg / full (Table V). BLCL needs the model's BLCL branch (ModelConfig.blcl=True), else ConfigError.
Pseudo masks (eq. 12, 13): the box frames' own predictions, thresholded at d_th inside the box, from epoch
`pseudo_from_epoch` on (default 1: "after finishing the first epoch"); for short runs `pseudo_from_step >= 0`
replaces the epoch rule by a step count (training forwards seen, a checkpointed buffer). Before that, box frames
give BLCL only their background (outside the box).
Multi-query head: everything (L_SEG, LGCFS filters, pseudo masks) uses the Hungarian-matched query of SimRVOS's
matcher ("ReferFormer+Ours"); frames with only a box still match through the score and box costs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch

from rvos.data.batch import Batch
from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.box_mil import box_mask, box_mil_per_frame
from rvos.losses.contrastive import blcl_loss, blcl_sets
from rvos.losses.lgcfs import LGCFSVariant, lgcfs_loss, model_apply_filters
from rvos.losses.mask import dice_per_frame, focal_per_frame
from rvos.methods.simrvos import PARTS as SIM_PARTS
from rvos.methods.simrvos import SimRVOS, SimRVOSConfig
from rvos.models.output import RVOSOutput

LGCFS_PARTS = ("lgcfs_dice", "lgcfs_focal", "lgcfs_mil")
BLCL_PARTS = ("blcl_lv", "blcl_cc_fg", "blcl_cc_bg")
PARTS = SIM_PARTS + ("mil",) + LGCFS_PARTS + BLCL_PARTS
_OURS = {"mil": 1.0, "lgcfs_dice": 5.0, "lgcfs_focal": 2.0, "lgcfs_mil": 1.0,
         "blcl_lv": 1.0, "blcl_cc_fg": 1.0, "blcl_cc_bg": 1.0}
DEFAULT_WEIGHTS = {
    "single": {"dice": 5.0, "focal": 2.0, **_OURS},
    "multi": {"dice": 5.0, "focal": 2.0, "score": 2.0, "box_l1": 5.0, "giou": 2.0, **_OURS},
}


@dataclass
class WRVOSConfig(SimRVOSConfig):
    """SimRVOSConfig (weights, focal, upsample_logits, match) plus the WRVOS terms; weights None -> DEFAULT_WEIGHTS."""

    seg_reduction: str = "sum"  # "sum" (eq. 21 per clip) or "mean" (SimRVOS)
    lgcfs: bool = True
    lgcfs_variant: str = "full"  # Table V: first_frame | first_frame_others_avg | full
    blcl: bool = True
    blcl_lv: bool = True  # Table VI "Language-Vision"
    blcl_cc: bool = True  # Table VI "Consistency"
    pseudo: bool = True  # Table VI "Pseudo"
    pseudo_from_epoch: int = 1
    pseudo_from_step: int = -1  # >= 0: pseudo masks from this many training steps on (replaces the epoch rule)
    d_th: float = 0.9
    blcl_normalize: bool = False  # cosine instead of eq. 14's plain dot product
    blcl_temperature: float = 1.0
    blcl_detach_anchors: bool = False


class WRVOS(SimRVOS):
    def __init__(self, model, cfg: WRVOSConfig | None = None):
        cfg = cfg or WRVOSConfig()
        head = getattr(getattr(model, "config", None), "head", "single")
        weights = dict(cfg.weights if cfg.weights is not None else DEFAULT_WEIGHTS[head])
        unknown = sorted(set(weights) - set(PARTS))
        if unknown:
            raise ConfigError(f"WRVOS weights: unknown parts {unknown}; known parts: {list(PARTS)}")
        switched_off = {"lgcfs": LGCFS_PARTS, "blcl": BLCL_PARTS, "blcl_lv": ("blcl_lv",),
                        "blcl_cc": ("blcl_cc_fg", "blcl_cc_bg")}
        for flag, names in switched_off.items():
            if not getattr(cfg, flag):
                weights = {k: w for k, w in weights.items() if k not in names}
        variants = [v.value for v in LGCFSVariant]
        if cfg.lgcfs_variant not in variants:
            raise ConfigError(f"WRVOS lgcfs_variant={cfg.lgcfs_variant!r}; choose from {variants}")
        if cfg.lgcfs_variant == LGCFSVariant.FIRST_FRAME.value:
            weights.pop("lgcfs_mil", None)  # eq. 8 only
        if cfg.seg_reduction not in ("sum", "mean"):
            raise ConfigError(f"WRVOS seg_reduction must be 'sum' or 'mean', got {cfg.seg_reduction!r}")
        if not 0.5 <= cfg.d_th < 1:
            raise ConfigError(f"WRVOS d_th must be in [0.5, 1), got {cfg.d_th}")
        weights = {k: float(w) for k, w in weights.items() if w}  # a zero weight switches the part off
        if any(k in BLCL_PARTS for k in weights) and getattr(model, "blcl", None) is None:
            raise ConfigError("WRVOS: the BLCL terms need the model's BLCL branch: set model.blcl=true, or switch "
                              "BLCL off with method.params.blcl=false")
        # SimRVOS checks and computes its own parts (dice, focal, score, box terms) from its subset of the table
        super().__init__(model, replace(cfg, weights={k: w for k, w in weights.items() if k in SIM_PARTS}))
        self.cfg, self.weights = cfg, weights
        self.epoch = 0
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))  # checkpointed with the method
        self._matched: Optional[torch.Tensor] = None

    # ---- schedule ---------------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def pseudo_active(self) -> bool:
        if not self.cfg.pseudo:
            return False
        if self.cfg.pseudo_from_step >= 0:
            return int(self.steps_seen) >= self.cfg.pseudo_from_step
        return self.epoch >= self.cfg.pseudo_from_epoch

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        parts = super().forward(batch)
        if self.training:
            self.steps_seen += 1
        return parts

    # ---- losses -----------------------------------------------------------------------------------------------
    def _match(self, *args) -> torch.Tensor:
        self._matched = super()._match(*args)  # kept for the WRVOS terms of the same forward
        return self._matched

    def _reduce(self, per_frame: torch.Tensor, frames: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """per_frame [B, T], frames bool [B, T] -> "sum": mean over clips of the per-clip sum; "mean": mean over
        the selected frames. No frame: 0, connected to the graph through `anchor`."""
        if not frames.any():
            return anchor.sum() * 0.0
        if self.cfg.seg_reduction == "mean":
            return per_frame[frames].mean()
        return (per_frame * frames).sum(1).mean()

    def losses(self, out: RVOSOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Unweighted parts: SimRVOS's, "mil", the LGCFS and the BLCL parts (those switched on)."""
        self._matched = None
        parts = super().losses(out, batch)
        B = out.mask_logits.shape[0]
        ar = torch.arange(B, device=out.mask_logits.device)
        idx = self._matched if self.multi else torch.zeros(B, dtype=torch.long, device=ar.device)
        idx = idx.to(ar.device)
        valid = batch.valid.bool()
        present = batch.present.bool() & batch.positive[:, None]
        mask_frames = valid & (batch.target_kind == int(TargetKind.MASK))
        box_frames = valid & (batch.target_kind == int(TargetKind.BOX))
        chosen = out.mask_logits[ar, :, idx]  # [B, T, h, w] stride 4, the matched query
        logits, masks = self._resize(chosen[:, :, None], batch.masks)
        logits = logits[:, :, 0]  # [B, T, h', w'] at the loss resolution
        if self.cfg.seg_reduction == "sum":
            a, g = self.cfg.focal_alpha, self.cfg.focal_gamma
            parts["dice"] = self._reduce(dice_per_frame(logits, masks), mask_frames, logits)
            parts["focal"] = self._reduce(focal_per_frame(logits, masks, a, g), mask_frames, logits)
        if "mil" in self.weights:
            target = box_mask(batch.boxes, tuple(logits.shape[-2:]), present)  # [B, T, h', w']
            parts["mil"] = self._reduce(box_mil_per_frame(logits, target), box_frames, logits)
        if any(k in self.weights for k in LGCFS_PARTS):
            filter_boxes = out.boxes[ar, :, idx] if out.boxes is not None else None  # [B, T, 4] cxcywh
            lg = lgcfs_loss(out.mask_features, out.filters[ar, :, idx], model_apply_filters(self.model),
                            batch.target_kind, batch.masks, batch.boxes, valid, self.cfg.lgcfs_variant, present,
                            filter_boxes, self.cfg.upsample_logits, self.cfg.focal_alpha, self.cfg.focal_gamma)
            parts.update({k: v for k, v in lg.items() if k in self.weights})
        if any(k in self.weights for k in BLCL_PARTS):
            parts.update(self._blcl(out, batch, chosen, valid, present))
        return parts

    def _blcl(self, out: RVOSOutput, batch: Batch, chosen: torch.Tensor, valid: torch.Tensor,
              present: torch.Tensor) -> dict[str, torch.Tensor]:
        H = out.extras.get("blcl_h")
        if H is None:
            raise ConfigError("WRVOS: the model output has no extras['blcl_h'] (build it with model.blcl=true)")
        fg, bg = blcl_sets(tuple(H.shape[-2:]), batch.target_kind, batch.masks, batch.boxes, valid, present,
                           pred_logits=chosen, use_pseudo=self.pseudo_active, d_th=self.cfg.d_th)
        c = self.cfg
        sentence = out.sentence.to(H.dtype)
        parts = blcl_loss(H, sentence, fg, bg, c.blcl_normalize, c.blcl_temperature, c.blcl_detach_anchors)
        return {k: v for k, v in parts.items() if k in self.weights}  # switched-off parts are not returned

