"""One synthetic video in memory: scene -> frames and label maps -> expressions."""
from __future__ import annotations

import numpy as np

from rvos.data.synth.config import SynthConfig
from rvos.data.synth.expressions import generate_expressions
from rvos.data.synth.queries import Facts
from rvos.data.synth.render import render_video, sprite_mask
from rvos.data.synth.scene import SceneObject, sample_scene

MIN_VISIBLE = 0.3  # an in-frame object shows at least this fraction of its area ...
MIN_VISIBLE_FRAMES = 0.75  # ... in at least this fraction of the frames where its centre is inside the frame
MAX_TRIES = 20


def _well_visible(objects: list[SceneObject], labels: np.ndarray) -> bool:
    """Reject scenes where an object hides behind others most of the time (occlusion should be an event)."""
    t, h, w = labels.shape
    counts = np.stack([np.bincount(labels[i].ravel(), minlength=256) for i in range(t)])  # [T, 256]
    for o in objects:
        area = sprite_mask(o.category, o.radius).sum()
        inside = (o.centres[:, 0] >= 0) & (o.centres[:, 0] < w) & (o.centres[:, 1] >= 0) & (o.centres[:, 1] < h)
        if inside.sum() == 0:
            return False
        shown = counts[:, o.obj_id] >= MIN_VISIBLE * area
        if shown[inside].mean() < MIN_VISIBLE_FRAMES:
            return False
    return True


def generate_video(rng: np.random.Generator, cfg: SynthConfig
                   ) -> tuple[np.ndarray, np.ndarray, list[SceneObject], list[dict]]:
    """(frames uint8 [T, H, W, 3] RGB, labels uint8 [T, H, W] (object id, 0 = background), objects, expressions).

    Expressions are dicts as written to meta_expressions.json, plus 'query' and 'hard_neg_queries' (the
    structured queries they say; not written to disk).
    Scenes where an object is mostly hidden are redrawn (up to MAX_TRIES times)."""
    for _ in range(MAX_TRIES):
        objects = sample_scene(rng, cfg)
        frames, labels = render_video(rng, objects, cfg)
        if _well_visible(objects, labels):
            break
    expressions = generate_expressions(rng, Facts(objects, labels), cfg)
    return frames, labels, objects, expressions
