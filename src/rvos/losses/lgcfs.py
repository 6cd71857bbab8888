"""Language-guided cross-frame segmentation, LGCFS (WRVOS section III-C, eq. 6-9); training only.

M^{t<-tau} = G_conv(F_ENH^t; f_theta^tau) for tau != t (eq. 7): frame t segmented with the dynamic filters of
every other real frame tau of its clip. A mask frame t supervises its T-1 predictions with L_MASK (dice + focal,
eq. 8), a box frame t with the box MIL loss (eq. 9). The diagonal tau == t is L_SEG (eq. 20), the method's.

Reduction (our reading of eq. 8, 9 and 21): per clip, sum over target frames t and over tau != t, as written;
then the mean over the B clips of the batch (a clip without a target frame adds 0). Variants (Table V):
- FIRST_FRAME: only eq. 8 (mask frames are segmented with the other frames' filters);
- FIRST_FRAME_OTHERS_AVG: eq. 8 + eq. 9, each clip's eq. 9 sum divided by its number of box frames;
- FULL (default, the paper's method, "first frame + others w/o avg"): eq. 8 + eq. 9, summed.
Parts are returned unweighted ("lgcfs_dice", "lgcfs_focal" and, unless FIRST_FRAME, "lgcfs_mil"); eq. 19's
5 / 2 and the MIL weight of L_SEG are the method's weight table. FIRST_FRAME does not return "lgcfs_mil".

Targets: frames whose target_kind is MASK / BOX and that are valid; NONE frames are never a target t (their
filters still segment the others: a filter is language-guided whatever the annotation). Box frames use
`present` (False: object annotated as not visible, every line a negative bag). Resolution: when the masks are
larger than the logits, `upsample=True` upsamples the logits bilinearly (as SimRVOS), `False` area-downsamples
the masks; box MIL is rasterised at the resolution the loss runs at.
"""
from __future__ import annotations

import enum
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.box_mil import box_mask, box_mil_per_frame
from rvos.losses.mask import dice_per_frame, focal_per_frame

# (features [N, C, h, w], filters [N, P]) -> logits [N, 1, h, w]; with filter_boxes a third argument [N, 4].
ApplyFilters = Callable[..., torch.Tensor]


class LGCFSVariant(str, enum.Enum):
    FIRST_FRAME = "first_frame"
    FIRST_FRAME_OTHERS_AVG = "first_frame_others_avg"
    FULL = "full"


def model_apply_filters(model) -> ApplyFilters:
    """Adapter from `RVOSModel.apply_filters` ([N,C,h,w] x [N,Q,P] -> [N,Q,h,w]) to one filter per row."""
    def fn(features: torch.Tensor, filters: torch.Tensor, boxes: Optional[torch.Tensor] = None) -> torch.Tensor:
        return model.apply_filters(features, filters[:, None], None if boxes is None else boxes[:, None])
    return fn


def cross_frame_pairs(targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """targets, valid bool [B, T] -> long [n, 3] rows (b, t, tau): t a target frame, tau != t a valid frame."""
    T = targets.shape[1]
    off_diag = ~torch.eye(T, dtype=torch.bool, device=targets.device)
    grid = targets[:, :, None] & valid[:, None, :] & off_diag  # [B, T(t), T(tau)]
    return grid.nonzero()


def lgcfs_loss(mask_features: torch.Tensor, filters: torch.Tensor, apply_filters: ApplyFilters,
               target_kind: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
               variant: LGCFSVariant | str = LGCFSVariant.FULL, present: Optional[torch.Tensor] = None,
               filter_boxes: Optional[torch.Tensor] = None, upsample: bool = True, focal_alpha: float = 0.25,
               focal_gamma: float = 2.0) -> dict[str, torch.Tensor]:
    """mask_features [B,T,C,h,w] (F_ENH), filters [B,T,P] (the chosen query's), target_kind long [B,T],
    masks [B,T,H,W], boxes [B,T,4] normalised xyxy, valid bool [B,T], present bool [B,T] (None: all present),
    filter_boxes [B,T,4] cxcywh of each filter's query (heads with relative coordinates) -> named parts."""
    try:
        variant = LGCFSVariant(variant)
    except ValueError:
        raise ConfigError(f"unknown LGCFS variant {variant!r}; choose from {[v.value for v in LGCFSVariant]}")
    B, T, _, h, w = mask_features.shape
    if filters.shape[:2] != (B, T) or filters.dim() != 3:
        raise ConfigError(f"lgcfs_loss: filters must be [B, T, P] = [{B}, {T}, P], got {tuple(filters.shape)}")
    valid = valid.to(torch.bool)
    present = torch.ones_like(valid) if present is None else present.to(torch.bool)
    is_mask = valid & (target_kind == int(TargetKind.MASK))
    is_box = valid & (target_kind == int(TargetKind.BOX))
    zero = mask_features.sum() * 0.0 + filters.sum() * 0.0
    parts = {"lgcfs_dice": zero, "lgcfs_focal": zero}
    if variant is not LGCFSVariant.FIRST_FRAME:
        parts["lgcfs_mil"] = zero

    def predict(pairs: torch.Tensor) -> torch.Tensor:
        b, t, tau = pairs.unbind(1)
        args = [mask_features[b, t], filters[b, tau]]  # [n, C, h, w], [n, P]
        if filter_boxes is not None:
            args.append(filter_boxes[b, tau])
        return apply_filters(*args)[:, 0]  # [n, h, w]

    def per_clip(values: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.zeros(B, dtype=values.dtype, device=values.device).index_add(0, b, values)  # [B]

    pairs = cross_frame_pairs(is_mask, valid)
    if len(pairs):
        logits = predict(pairs)
        target = masks[pairs[:, 0], pairs[:, 1]].to(logits.dtype)  # [n, H, W]
        if target.shape[-2:] != logits.shape[-2:]:
            if upsample:
                logits = F.interpolate(logits[:, None], size=target.shape[-2:], mode="bilinear",
                                       align_corners=False)[:, 0]
            else:
                target = F.interpolate(target[:, None], size=logits.shape[-2:], mode="area")[:, 0]
        parts["lgcfs_dice"] = per_clip(dice_per_frame(logits, target), pairs[:, 0]).mean()
        parts["lgcfs_focal"] = per_clip(focal_per_frame(logits, target, focal_alpha, focal_gamma), pairs[:, 0]).mean()

    pairs = cross_frame_pairs(is_box, valid)
    if "lgcfs_mil" in parts and len(pairs):
        logits = predict(pairs)
        if upsample and masks.shape[-2:] != logits.shape[-2:]:
            logits = F.interpolate(logits[:, None], size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        b, t = pairs[:, 0], pairs[:, 1]
        target = box_mask(boxes[b, t], tuple(logits.shape[-2:]), present[b, t])  # [n, h, w]
        clip = per_clip(box_mil_per_frame(logits, target), b)  # [B]
        if variant is LGCFSVariant.FIRST_FRAME_OTHERS_AVG:
            clip = clip / is_box.sum(1).clamp(min=1).to(clip.dtype)
        parts["lgcfs_mil"] = clip.mean()
    return parts
