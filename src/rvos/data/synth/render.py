"""Drawing: object sprites (hard-edged masks, so the label map is exactly the painted pixels), textured noisy
backgrounds, and the composition of a video with occlusion by depth."""
from __future__ import annotations

import math

import cv2
import numpy as np

from rvos.data.synth.config import COLOURS, SynthConfig
from rvos.data.synth.scene import SceneObject

SHIFT = 4  # cv2 fixed-point bits: sub-pixel geometry without anti-aliasing
_ONE = 1 << SHIFT


def _pts(points, c: float) -> np.ndarray:
    return np.round((np.asarray(points, dtype=float) + c) * _ONE).astype(np.int32)


def sprite_mask(category: str, radius: float) -> np.ndarray:
    """bool [S, S] silhouette of a category, centred at ((S-1)/2, (S-1)/2), half extent `radius`."""
    s = 2 * int(math.ceil(radius)) + 3
    c, r = (s - 1) / 2, radius
    m = np.zeros((s, s), np.uint8)

    def poly(points):
        cv2.fillPoly(m, [_pts(points, c)], 1, cv2.LINE_8, SHIFT)

    def rect(x0, y0, x1, y1):
        poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def disc(x, y, rad, value=1):
        cv2.circle(m, tuple(int(v) for v in _pts([(x, y)], c)[0]), int(round(rad * _ONE)), value, -1, cv2.LINE_8,
                   SHIFT)

    if category == "circle":
        disc(0, 0, r)
    elif category == "square":
        rect(-0.85 * r, -0.85 * r, 0.85 * r, 0.85 * r)
    elif category == "triangle":
        poly([(0, -r), (0.95 * r, 0.8 * r), (-0.95 * r, 0.8 * r)])
    elif category == "star":
        angles = -math.pi / 2 + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        poly(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1))
    elif category == "ring":
        disc(0, 0, r)
        disc(0, 0, 0.55 * r, 0)
    elif category == "cross":
        rect(-0.33 * r, -r, 0.33 * r, r)
        rect(-r, -0.33 * r, r, 0.33 * r)
    elif category == "car":
        rect(-r, -0.15 * r, r, 0.45 * r)  # body
        rect(-0.55 * r, -0.6 * r, 0.45 * r, -0.15 * r)  # cabin
        disc(-0.55 * r, 0.5 * r, 0.3 * r)  # wheels
        disc(0.55 * r, 0.5 * r, 0.3 * r)
    elif category == "person":
        disc(0, -0.72 * r, 0.27 * r)  # head
        rect(-0.3 * r, -0.45 * r, 0.3 * r, 0.3 * r)  # torso
        rect(-0.65 * r, -0.42 * r, 0.65 * r, -0.22 * r)  # arms
        rect(-0.3 * r, 0.3 * r, -0.07 * r, r)  # legs
        rect(0.07 * r, 0.3 * r, 0.3 * r, r)
    else:
        raise ValueError(f"unknown category {category!r}")
    return m.astype(bool)


def sprite_colours(colour: str, texture: str, size: int) -> np.ndarray:
    """uint8 [S, S, 3] paint of an object: its colour, with dark stripes or dots for textured objects."""
    base = np.array(COLOURS[colour], dtype=np.float32)
    dark = base * 0.4
    yy, xx = np.mgrid[0:size, 0:size]
    if texture == "striped":  # diagonal stripes, period 6 px, 2 px dark
        pattern = (xx + yy) % 6 < 2
    elif texture == "dotted":  # dots on a 6 px grid
        pattern = ((xx % 6 - 2.5) ** 2 + (yy % 6 - 2.5) ** 2) <= 2.3
    else:
        pattern = np.zeros((size, size), bool)
    img = np.where(pattern[..., None], dark, base)
    return img.astype(np.uint8)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """float32 [H, W, 3]: a muted base colour, low-frequency blotches and some grey clutter strokes."""
    base = rng.uniform(70, 170) + rng.uniform(-18, 18, size=3)
    low = rng.normal(0, 1, size=(height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    low = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    img = base.astype(np.float32) + 22 * low.mean(axis=2, keepdims=True) + 6 * low
    for _ in range(int(rng.integers(6, 14))):  # clutter: thin grey strokes (never object colours)
        p = rng.uniform(0, 1, 4) * [width, height, width, height]
        grey = float(rng.uniform(-35, 35))
        stroke = np.zeros((height, width), np.float32)
        cv2.line(stroke, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), 1.0, int(rng.integers(1, 4)))
        img += grey * stroke[..., None]
    return np.clip(img, 0, 255)


def paste_window(centre: np.ndarray, size: int, height: int, width: int):
    """(frame slice, sprite slice) where a size x size sprite centred at round(centre) lands; None if outside."""
    x0 = int(round(centre[0])) - (size - 1) // 2
    y0 = int(round(centre[1])) - (size - 1) // 2
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + size, width), min(y0 + size, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1)), (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))


def object_mask(obj: SceneObject, t: int, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the full silhouette of `obj` in frame t, ignoring occlusion."""
    sprite = sprite_mask(obj.category, obj.radius)
    out = np.zeros((height, width), bool)
    win = paste_window(obj.centres[t], sprite.shape[0], height, width)
    if win is not None:
        out[win[0]] = sprite[win[1]]
    return out


def render_video(rng: np.random.Generator, objects: list[SceneObject], cfg: SynthConfig
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T, H, W, 3] RGB, labels uint8 [T, H, W]); objects are painted far to near, so each label
    pixel is the id of the nearest object covering it."""
    t, h, w = cfg.frames, cfg.height, cfg.width
    bg = background(rng, h, w)
    frames = np.empty((t, h, w, 3), np.uint8)
    labels = np.zeros((t, h, w), np.uint8)
    sprites = {o.obj_id: sprite_mask(o.category, o.radius) for o in objects}
    paint = {o.obj_id: sprite_colours(o.colour, o.texture, sprites[o.obj_id].shape[0]) for o in objects}
    for i in range(t):
        img = bg + rng.normal(0, cfg.noise, size=(h, w, 1)).astype(np.float32)
        img = np.clip(img, 0, 255).astype(np.uint8)
        for o in sorted(objects, key=lambda o: o.depth):
            win = paste_window(o.centres[i], sprites[o.obj_id].shape[0], h, w)
            if win is None:
                continue
            m = sprites[o.obj_id][win[1]]
            img[win[0]][m] = paint[o.obj_id][win[1]][m]
            labels[i][win[0]][m] = o.obj_id
        frames[i] = img
    return frames, labels
