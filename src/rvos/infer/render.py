"""Drawing masks over frames: the DAVIS palette for label PNGs, one tint colour per sentence for overlays, and
the sentence written on the frame. Pure functions on uint8 RGB arrays (cv2 does the drawing)."""
from __future__ import annotations

import cv2
import numpy as np


def davis_palette() -> list[int]:
    """The 256-entry palette of DAVIS / Ref-YouTube-VOS annotation PNGs (the PASCAL VOC bit-interleaving colour
    map: 0 black, 1 (128, 0, 0), 2 (0, 128, 0) ...), flattened to 768 ints for `PIL.Image.putpalette`."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


# Bright, distinguishable tints for up to 8 sentences (RGB); later sentences cycle.
TINTS: list[tuple[int, int, int]] = [
    (255, 64, 64), (64, 200, 255), (80, 230, 80), (255, 200, 40),
    (220, 90, 255), (255, 140, 0), (0, 220, 180), (255, 105, 180),
]


def tint(index: int) -> tuple[int, int, int]:
    return TINTS[index % len(TINTS)]


def overlay_masks(frame: np.ndarray, masks: list[np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """Frame uint8 [H, W, 3] RGB with each bool mask [H, W] blended in its sentence's tint and outlined."""
    out = frame.astype(np.float32)
    for k, mask in enumerate(masks):
        if not mask.any():
            continue
        color = np.asarray(tint(k), dtype=np.float32)
        out[mask] = (1.0 - alpha) * out[mask] + alpha * color
    out = out.round().clip(0, 255).astype(np.uint8)
    for k, mask in enumerate(masks):
        if mask.any():
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, tint(k), thickness=max(1, min(frame.shape[:2]) // 240))
    return out


def draw_captions(frame: np.ndarray, lines: list[str], max_chars: int = 60) -> np.ndarray:
    """Write one line per sentence at the top left, in the sentence's tint on a dark band (in place, returned)."""
    h, w = frame.shape[:2]
    scale = max(0.35, min(w, h) / 900.0)
    thickness = max(1, int(round(scale * 2)))
    (_, line_h), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    step = line_h + base + 4
    for k, text in enumerate(lines):
        text = text if len(text) <= max_chars else text[: max_chars - 3] + "..."
        y = 4 + step * (k + 1) - base
        if y > h:
            break
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        band = frame[max(0, y - line_h - 2): min(h, y + base + 2), 0: min(w, tw + 8)]
        band[...] = (band.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
        cv2.putText(frame, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, tint(k), thickness, cv2.LINE_AA)
    return frame


def draw_timeline(frame: np.ndarray, relevance: list, index: int, n_frames: int, threshold: float = 0.5) -> np.ndarray:
    """Predicted spans along the bottom of the frame (in place, returned): one bar per sentence that has relevance
    (a list of per-frame probabilities known so far, or None: no bar), its tint where the probability exceeds
    `threshold`, grey elsewhere, dark for frames not yet known; a white tick marks frame `index`."""
    h, w = frame.shape[:2]
    rows = [(k, r) for k, r in enumerate(relevance) if r is not None]
    if not rows or n_frames < 1:
        return frame
    bar = max(3, h // 60)
    for row, (k, rel) in enumerate(rows):
        y1 = h - 2 - row * (bar + 2)
        y0 = y1 - bar
        if y0 < 0:
            break
        for t in range(n_frames):
            x0, x1 = t * w // n_frames, max(t * w // n_frames + 1, (t + 1) * w // n_frames)
            color = (40, 40, 40) if t >= len(rel) else tint(k) if rel[t] > threshold else (128, 128, 128)
            frame[y0:y1, x0:x1] = color
        x = min(w - 1, (2 * index + 1) * w // (2 * n_frames))
        frame[y0:y1, max(0, x - 1): x + 1] = (255, 255, 255)
    return frame


def render_frame(frame: np.ndarray, masks: list[np.ndarray], sentences: list[str], alpha: float = 0.5) -> np.ndarray:
    """The overlay video's frame: masks tinted over the frame and the sentences written on it (RGB)."""
    return draw_captions(overlay_masks(frame, masks, alpha), sentences)
