"""Frame geometry between a video and the model: resize the shorter side (keep aspect), pad to a multiple of
the backbone stride, and map stride-4 mask logits back to the original frame size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Geometry:
    height: int  # original frame size
    width: int
    model_h: int  # size fed to the model before padding
    model_w: int
    pad_h: int  # padded input size (a multiple of pad_to)
    pad_w: int

    @classmethod
    def create(cls, height: int, width: int, size: Optional[int] = None, pad_to: int = 32) -> "Geometry":
        """`size`: the model sees frames with the shorter side resized to `size` (None: original size)."""
        if size is None:
            mh, mw = height, width
        else:
            scale = size / min(height, width)
            mh, mw = max(1, round(height * scale)), max(1, round(width * scale))
        ph, pw = -(-mh // pad_to) * pad_to, -(-mw // pad_to) * pad_to
        return cls(height, width, mh, mw, ph, pw)

    def to_input(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB frames [H, W, 3] -> float [T, 3, pad_h, pad_w] in [0, 1], zero padding bottom/right."""
        mh, mw = self.model_h, self.model_w
        out = torch.empty(len(frames), 3, self.pad_h, self.pad_w)
        out[:, :, mh:] = 0
        out[:, :, :mh, mw:] = 0
        planes = out.numpy()
        for t, frame in enumerate(frames):
            if frame.shape[:2] != (self.height, self.width):
                frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
            if (mh, mw) != (self.height, self.width):
                shrink = mh < self.height
                frame = cv2.resize(frame, (mw, mh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            # one plane at a time (cv2.split): contiguous copies, a third faster than a strided HWC -> CHW copy
            for c, plane in enumerate(cv2.split(np.require(frame, np.uint8, ['C']))):
                planes[t, c, :mh, :mw] = plane
        return out.div_(255.0)

    def upsample(self, logits: torch.Tensor) -> torch.Tensor:
        """Mask logits [T, h, w] at any stride of the padded input -> [T, height, width] logits of the original
        frame: bilinear to the padded input size, crop the padding, bilinear to the original size if resized."""
        x = F.interpolate(logits[:, None].float(), size=(self.pad_h, self.pad_w), mode="bilinear", align_corners=False)
        x = x[:, :, : self.model_h, : self.model_w]  # [T, 1, model_h, model_w]
        if (self.model_h, self.model_w) != (self.height, self.width):
            x = F.interpolate(x, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return x[:, 0]
