"""Clip augmentation on numpy arrays: random resize, target-keeping crop, photometric jitter, horizontal flip
(which also swaps left/right words in the sentence) and the final fixed-size resize that lets clips batch.

Every transform takes and returns a `Clip` and draws from the `np.random.Generator` it is given, so a clip's
augmentation depends only on the seed the sampler derives for it. The same geometry is applied to every frame of
a clip. Boxes are pixel (x0, y0, x1, y1), x1/y1 exclusive, NaN where a frame has no box; BOX-frame boxes move
with the geometry, MASK-frame boxes are recomputed from the transformed mask.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

import cv2
import numpy as np

from rvos.data.types import TargetKind

# Words a horizontal flip turns into each other (both directions are generated below).
_SWAPS = {"left": "right", "leftmost": "rightmost", "lefthand": "righthand", "left-hand": "right-hand",
          "leftward": "rightward", "leftwards": "rightwards", "west": "east", "western": "eastern",
          "clockwise": "counterclockwise", "anticlockwise": "clockwise"}
_PAIRS = {**_SWAPS, **{v: k for k, v in _SWAPS.items() if k != "anticlockwise"}}
_WORD = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _PAIRS), key=len, reverse=True)) + r")\b", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """The sentence as it reads for the mirrored video: 'left' <-> 'right', 'leftmost' <-> 'rightmost', ...,
    keeping the capitalisation of each word."""

    def sub(m: re.Match) -> str:
        word = m.group(0)
        out = _PAIRS[word.lower()]
        if word.isupper():
            return out.upper()
        if word[0].isupper():
            return out[0].upper() + out[1:]
        return out

    return _WORD.sub(sub, text)


@dataclass
class Clip:
    """T frames of one video with the referred target, as numpy arrays (pre-tensor)."""

    frames: np.ndarray  # uint8 [T, H, W, 3] RGB
    masks: np.ndarray  # bool [T, H, W]; meaningful where kinds == MASK
    boxes: np.ndarray  # float32 [T, 4] pixel (x0, y0, x1, y1); NaN where no box
    kinds: np.ndarray  # int64 [T], TargetKind per frame
    text: str
    flipped: bool = False
    instances: Optional[np.ndarray] = None  # int16 [T, H, W] label map of every object (0 = none), or None

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[1], self.frames.shape[2]

    def present(self) -> np.ndarray:  # bool [T]: the annotation says the target is visible
        is_mask = self.kinds == TargetKind.MASK
        is_box = (self.kinds == TargetKind.BOX) & ~np.isnan(self.boxes).any(axis=1)
        return (is_mask & self.masks.any(axis=(1, 2))) | is_box


def _refresh_mask_boxes(clip: Clip) -> Clip:
    """Recompute the box of every MASK frame from its mask (NaN when empty)."""
    boxes = clip.boxes.copy()
    for t in np.flatnonzero(clip.kinds == TargetKind.MASK):
        rows, cols = np.flatnonzero(clip.masks[t].any(1)), np.flatnonzero(clip.masks[t].any(0))
        boxes[t] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) if rows.size else np.nan
    return replace(clip, boxes=boxes)


def resize(clip: Clip, height: int, width: int) -> Clip:
    """Resize frames (bilinear), masks (nearest) and boxes to (height, width)."""
    h, w = clip.size
    if (h, w) == (height, width):
        return clip
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in clip.frames])
    masks = np.stack([cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) for m in clip.masks]) > 0
    scale = np.array([width / w, height / h, width / w, height / h], dtype=np.float32)
    inst = None if clip.instances is None else np.stack(
        [cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in clip.instances])
    return _refresh_mask_boxes(replace(clip, frames=frames, masks=masks, boxes=clip.boxes * scale, instances=inst))


def random_resize(clip: Clip, shorter_sides: list[int], rng: np.random.Generator, max_longer: int = 0) -> Clip:
    """Resize so the shorter side is drawn from `shorter_sides` (aspect kept; longer side capped at max_longer)."""
    h, w = clip.size
    s = int(shorter_sides[rng.integers(len(shorter_sides))])
    scale = s / min(h, w)
    if max_longer and max(h, w) * scale > max_longer:
        scale = max_longer / max(h, w)
    return resize(clip, max(1, round(h * scale)), max(1, round(w * scale)))


def crop(clip: Clip, y0: int, x0: int, height: int, width: int) -> Clip:
    """Crop the window [y0, y0+height) x [x0, x0+width); boxes are shifted and clipped (NaN when cut away)."""
    frames = clip.frames[:, y0:y0 + height, x0:x0 + width]
    masks = clip.masks[:, y0:y0 + height, x0:x0 + width]
    boxes = clip.boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    gone = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    boxes[gone] = np.nan
    inst = None if clip.instances is None else np.ascontiguousarray(clip.instances[:, y0:y0 + height, x0:x0 + width])
    return _refresh_mask_boxes(replace(clip, frames=np.ascontiguousarray(frames), masks=np.ascontiguousarray(masks),
                                       boxes=boxes, instances=inst))


def random_crop(clip: Clip, min_scale: float, rng: np.random.Generator, tries: int = 10) -> Clip:
    """Crop a random window (each side a fraction in [min_scale, 1] of the frame) that keeps the target visible
    in every frame where it was visible; after `tries` failures the clip is returned uncropped."""
    h, w = clip.size
    before = clip.present()
    for _ in range(tries):
        ch = int(round(h * rng.uniform(min_scale, 1.0)))
        cw = int(round(w * rng.uniform(min_scale, 1.0)))
        y0, x0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        out = crop(clip, y0, x0, ch, cw)
        if (out.present() >= before).all():
            return out
    return clip


def hflip(clip: Clip) -> Clip:
    """Mirror frames, masks and boxes left-right and swap left/right words in the sentence."""
    w = clip.size[1]
    boxes = clip.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - clip.boxes[:, 2], w - clip.boxes[:, 0]
    return replace(clip, frames=np.ascontiguousarray(clip.frames[:, :, ::-1]),
                   masks=np.ascontiguousarray(clip.masks[:, :, ::-1]), boxes=boxes,
                   text=swap_left_right(clip.text), flipped=not clip.flipped,
                   instances=None if clip.instances is None else np.ascontiguousarray(clip.instances[:, :, ::-1]))


def photometric(clip: Clip, rng: np.random.Generator, strength: float = 0.2) -> Clip:
    """Brightness, contrast, saturation and hue jitter, the same draw for every frame of the clip."""
    x = clip.frames.astype(np.float32) / 255.0  # [T, H, W, 3]
    b, c, s = (1.0 + rng.uniform(-strength, strength, size=3)).astype(np.float32)
    hue = float(rng.uniform(-strength, strength) * 0.25)  # fraction of the colour wheel
    x = x * b
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * c + mean
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - gray[..., None]) * s + gray[..., None]
    if hue:
        # rotate chroma around the gray axis (YIQ rotation) by hue * 2 pi
        yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32)
        a = hue * 2 * np.pi
        rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]], dtype=np.float32)
        m = np.linalg.inv(yiq) @ rot @ yiq
        x = x @ m.T.astype(np.float32)
    frames = (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return replace(clip, frames=frames)
