"""RVOSModel: vision encoder -> cross-modal fusion -> FPN -> dynamic-filter head (SimRVOS, WRVOS section III-B).

Frames of a clip are independent (each frame gets its own filters from its own fused feature), so a predictor
may run one frame at a time. `encode_frames` is the expensive part (what the feature cache stores); `decode`
is everything after it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from rvos.errors import ConfigError
from rvos.models.output import RVOSOutput
from rvos.models.text import TextEncoder, TextFeatures
from rvos.models.vision import VisionEncoder


class RVOSModel(nn.Module):
    def __init__(self, *, vision: VisionEncoder, text: TextEncoder, fusion: nn.Module, fpn: nn.Module,
                 head: nn.Module, config=None):
        super().__init__()
        self.vision = vision
        self.text = text
        self.fusion = fusion
        self.fpn = fpn
        self.head = head
        self.config = config

    def encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """frames [N, 3, H, W] in [0, 1] -> [C2, C3, C4, C5], each [N, C_l, H_l, W_l]."""
        return self.vision(frames)

    def encode_text(self, texts: list[str]) -> TextFeatures:
        return self.text(texts)

    def apply_filters(self, mask_features: torch.Tensor, filters: torch.Tensor,
                      boxes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Dynamic convolution (eq. 5) of any filters with any frames' mask features: [N,C_m,H,W] x [N,Q,P] ->
        [N, Q, H, W]. Methods use it for cross-frame segmentation (LGCFS, eq. 7)."""
        return self.head.mask_logits(mask_features, filters, boxes)

    def decode(self, features: list[torch.Tensor], text: TextFeatures, B: int, T: int) -> RVOSOutput:
        """features: C2..C5, each [B*T, C_l, H_l, W_l] (frame-major within a clip); text: B sentences."""
        if len(features) != 4:
            raise ConfigError(f"decode expects 4 feature levels (C2..C5), got {len(features)}")
        if features[0].shape[0] != B * T or text.sentence.shape[0] != B:
            raise ConfigError(f"decode got {features[0].shape[0]} frames and {text.sentence.shape[0]} sentences "
                              f"for B={B}, T={T}")
        c2, c3, c4, c5 = features
        words = text.words.repeat_interleave(T, dim=0)  # [B*T, L, C_t]
        pad = text.pad_mask.repeat_interleave(T, dim=0)
        sent = text.sentence.repeat_interleave(T, dim=0)
        fused = self.fusion(c5, words, pad, sent)
        mask_features = self.fpn(fused.visual, c4, c3, c2, fused.sentence)  # [B*T, C_m, H/4, W/4]
        filters, scores, boxes = self.head(fused)  # [B*T, Q, P], [B*T, Q], [B*T, Q, 4] | None
        masks = self.head.mask_logits(mask_features, filters, boxes)  # [B*T, Q, H/4, W/4]

        def bt(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(B, T, *x.shape[1:])

        return RVOSOutput(
            mask_logits=bt(masks),
            scores=bt(scores),
            filters=bt(filters),
            mask_features=bt(mask_features),
            sentence=self.fusion.project_sentence(text.sentence),  # [B, D]
            boxes=None if boxes is None else bt(boxes),
            extras={"fused_visual": bt(fused.visual), "fused_words": bt(fused.words), "word_pad": bt(pad)},
        )

    def forward(self, frames: Optional[torch.Tensor], text, features: Optional[list[torch.Tensor]] = None
                ) -> RVOSOutput:
        """frames [B, T, 3, H, W] in [0, 1], or None when `features` (per level [B, T, C_l, H_l, W_l], e.g. from
        the feature cache) replace the vision pass; text: B sentences or their TextFeatures."""
        if features is not None:
            B, T = features[0].shape[:2]
            flat = [f.flatten(0, 1) for f in features]  # [B*T, C_l, H_l, W_l]
        elif frames is not None:
            if frames.dim() != 5:
                raise ConfigError(f"forward expects frames [B, T, 3, H, W], got {tuple(frames.shape)}")
            B, T = frames.shape[:2]
            flat = self.encode_frames(frames.flatten(0, 1))
        else:
            raise ConfigError("forward needs frames or cached features")
        if not isinstance(text, TextFeatures):
            text = self.encode_text(list(text))
        return self.decode(flat, text, B, T)
