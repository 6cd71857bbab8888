"""What `RVOSModel.forward(frames, text)` returns. Methods and the predictor read these fields; nothing else."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass
class RVOSOutput:
    """Q = number of queries (1 for the single-query SimRVOS head). Masks are at stride 4 of the input."""

    mask_logits: torch.Tensor  # [B, T, Q, H/4, W/4]
    scores: torch.Tensor  # [B, T, Q], logit that query q is the referred object in frame t
    filters: torch.Tensor  # [B, T, Q, P], the language-guided dynamic filter parameters (eq. 3)
    mask_features: torch.Tensor  # [B, T, C_m, H/4, W/4], the FPN feature the filters are applied to (eq. 4-5)
    sentence: torch.Tensor  # [B, C], projected sentence feature
    boxes: Optional[torch.Tensor] = None  # [B, T, Q, 4] normalised (cx, cy, w, h) in [0, 1] (multi-query head)
    presence: Optional[torch.Tensor] = None  # [B], logit that the referred object is in the video (R2-VOS)
    relevance: Optional[torch.Tensor] = None  # [B, T], logit that the sentence holds at frame t
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # intermediate features methods may need
