"""Objects of a synthetic video and their trajectories.

A scene is a list of `SceneObject`s: appearance (category, colour, size, texture), a depth (draw order, larger is
nearer the camera) and a trajectory: centre positions `centres[t] = (x, y)` in pixels for every frame and the
velocity `velocity[t] = centres[t + 1] - centres[t]` (the last frame keeps the last step). Velocities are
axis-aligned, so "moving left" at frame t is simply `velocity[t, 0] < 0`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rvos.data.synth.config import (CATEGORIES, COLOURS, DIRECTIONS, MOTION_WEIGHTS, MOTIONS, SIZES, TEXTURES,
                                    SynthConfig)

UNIT = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
PERPENDICULAR = {"left": ("up", "down"), "right": ("up", "down"), "up": ("left", "right"), "down": ("left", "right")}
MIN_SPEED = 1.5  # px per frame; slower programs are resampled so that motion is visible


@dataclass
class SceneObject:
    obj_id: int
    category: str
    colour: str
    size: str
    texture: str
    radius: float  # half extent in pixels
    depth: int
    motion: str  # the program drawn (one of MOTIONS); expressions re-derive facts from `velocity`
    centres: np.ndarray  # float [T, 2] (x, y)
    velocity: np.ndarray  # float [T, 2]

    def attributes(self) -> dict[str, str]:
        return {"category": self.category, "colour": self.colour, "size": self.size, "texture": self.texture}


def sample_appearances(rng: np.random.Generator, n: int, cfg: SynthConfig) -> list[dict[str, str]]:
    """n appearances; with `distractor_prob` an object copies the category of an earlier one and changes 0-2 of
    its colour, size and texture, so that only attributes, position or motion tell them apart."""
    out: list[dict[str, str]] = []
    for i in range(n):
        if i > 0 and rng.random() < cfg.distractor_prob:
            a = dict(out[int(rng.integers(len(out)))])
            n_change = int(rng.choice([0, 1, 2], p=[0.15, 0.55, 0.30]))
            for key in rng.permutation(["colour", "size", "texture"])[:n_change]:
                options = {"colour": list(COLOURS), "size": list(SIZES), "texture": list(TEXTURES)}[key]
                a[key] = str(rng.choice([o for o in options if o != a[key]]))
        else:
            used = {o["category"] for o in out}
            fresh = [c for c in CATEGORIES if c not in used] or list(CATEGORIES)
            a = {"category": str(rng.choice(fresh)), "colour": str(rng.choice(list(COLOURS))),
                 "size": str(rng.choice(list(SIZES))), "texture": str(rng.choice(TEXTURES, p=[0.5, 0.25, 0.25]))}
        out.append(a)
    return out


def _velocities(motion: str, d1: str, d2: str, speed: float, k: int, t: int) -> np.ndarray:
    """Per-frame velocity [T, 2] of a motion program; `k` is the frame where stop/start/turn happens."""
    v = np.zeros((t, 2))
    u1, u2 = np.array(UNIT[d1]) * speed, np.array(UNIT[d2]) * speed
    if motion in ("constant", "enter", "leave"):
        v[:] = u1
    elif motion == "stop":
        v[:k] = u1
    elif motion == "start":
        v[k:] = u1
    elif motion == "turn":
        v[:k], v[k:] = u1, u2
    return v


def sample_trajectory(rng: np.random.Generator, motion: str, radius: float, cfg: SynthConfig
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(centres [T, 2], velocity [T, 2]) for one motion program; in-frame programs keep the whole object inside."""
    t, size = cfg.frames, np.array([cfg.width, cfg.height], dtype=float)
    d1 = str(rng.choice(DIRECTIONS))
    d2 = str(rng.choice(PERPENDICULAR[d1]))
    k = int(rng.integers(t // 4, 3 * t // 4 + 1))
    speed = float(rng.uniform(2.0, 5.0) if motion not in ("enter", "leave") else rng.uniform(4.0, 7.0))
    v = _velocities(motion, d1, d2, speed, k, t)
    offsets = np.concatenate([np.zeros((1, 2)), np.cumsum(v[:-1], axis=0)])  # [T, 2] position relative to frame 0
    if motion in ("enter", "leave"):
        axis = 0 if d1 in ("left", "right") else 1
        length, j = size[axis], int(rng.integers(1, 5))
        if motion == "enter":  # fully outside for j frames, as if moving towards +: start below -radius
            start = -radius - speed * j
        else:  # fully outside from frame t-1-j on
            lo = max(radius, length + radius - speed * (t - 1 - j))
            start = float(rng.uniform(min(lo, length - radius), length - radius))
        if UNIT[d1][axis] < 0:
            start = length - start
        p0 = np.empty(2)
        p0[axis] = start
        p0[1 - axis] = rng.uniform(radius, size[1 - axis] - radius)
        return p0 + offsets, v
    span = offsets.max(axis=0) - offsets.min(axis=0)
    room = size - 2 * radius
    if np.any(span > room):  # too fast to stay inside: slow down
        scale = float(np.min(room / np.maximum(span, 1e-9)))
        v, offsets = v * scale, offsets * scale
    lo, hi = radius - offsets.min(axis=0), size - radius - offsets.max(axis=0)
    p0 = rng.uniform(lo, np.maximum(hi, lo))  # hi == lo up to rounding when the path spans the frame
    return p0 + offsets, v


def sample_scene(rng: np.random.Generator, cfg: SynthConfig) -> list[SceneObject]:
    """2-5 objects with appearance, depth and trajectory (see the module docstring)."""
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    depths = rng.permutation(n)
    objects = []
    for i, a in enumerate(sample_appearances(rng, n, cfg)):
        radius = SIZES[a["size"]] * cfg.height
        for _ in range(10):
            motion = str(rng.choice(MOTIONS, p=MOTION_WEIGHTS))
            centres, velocity = sample_trajectory(rng, motion, radius, cfg)
            speed = np.abs(velocity).max()
            if motion == "static" or speed >= MIN_SPEED:
                break
        else:
            motion, centres, velocity = "static", centres[:1].repeat(cfg.frames, 0), np.zeros_like(velocity)
        objects.append(SceneObject(obj_id=i + 1, radius=radius, depth=int(depths[i]), motion=motion,
                                   centres=centres, velocity=velocity, **a))
    return objects
