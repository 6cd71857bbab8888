"""The Batch every method consumes, built by one collate (rvos.data.clips). Shapes are part of the contract."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import torch


@dataclass
class Batch:
    """B clips of T frames, each paired with one sentence. The target is the union of the objects the sentence
    refers to; frames of a negative (absent-object) pair have an empty target."""

    frames: torch.Tensor  # float [B, T, 3, H, W], RGB in [0, 1]; the vision encoder applies its own normalisation
    target_kind: torch.Tensor  # long [B, T], rvos.data.types.TargetKind of the target in each frame
    masks: torch.Tensor  # float [B, T, H, W] in {0, 1}; meaningful where target_kind == MASK
    boxes: torch.Tensor  # float [B, T, 4], (x0, y0, x1, y1) normalised to [0, 1]; meaningful where present & BOX/MASK
    present: torch.Tensor  # bool [B, T], the annotation says the target is visible (False where NONE)
    valid: torch.Tensor  # bool [B, T], a real frame (False for padding of short videos)
    in_span: torch.Tensor  # bool [B, T], the sentence holds at this frame (all True when spans are unknown)
    positive: torch.Tensor  # bool [B], the sentence refers to something in this video
    text: list[str]  # B sentences (after augmentation, e.g. left/right swapped with a flip)
    video_ids: list[str]  # B
    exp_ids: list[str]  # B
    frame_index: torch.Tensor  # long [B, T], frame positions in the source video
    features: Optional[list[torch.Tensor]] = None  # cached visual features per level (C2..C5), [B, T, C_l, H_l, W_l]
    span_known: Optional[torch.Tensor] = None  # bool [B], the sentence's spans are annotated (in_span is not a default)
    # every object of the video (data.clip.instances=true; object-centric models), K padded per batch:
    instances: Optional[torch.Tensor] = None  # long [B, T, H, W], 0 = no object, k + 1 = object k
    instance_known: Optional[torch.Tensor] = None  # bool [B, T, K], object k has a mask target in frame t
    refers: Optional[torch.Tensor] = None  # bool [B, K], the sentence refers to object k
    instance_ids: Optional[torch.Tensor] = None  # long [B, K], object ids (-1 = padding)
    # WSRVOS text supervision, B lists of sentences each (flipped clips have them mirrored like `text`):
    positives: Optional[list[list[str]]] = None  # augmented positives of the clip's expression
    negatives: Optional[list[list[str]]] = None  # its hard negatives (category, attribute or action changed)
    others: Optional[list[list[str]]] = None  # the video's expressions that refer to none of the clip's objects

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device, non_blocking=non_blocking)
            elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
                v = [t.to(device, non_blocking=non_blocking) for t in v]
            out[f.name] = v
        return Batch(**out)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[0], self.frames.shape[1]
