"""Tiny hand-made videos for the protocol and CLI tests: 20x20 frames, object 1 a 5x5 square at (2, 2),
object 2 a 5x5 square at (10, 10), the same in every frame."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos.data.frames import ArrayFrames
from rvos.data.types import ArrayMask, Expression, FrameTarget, ObjectTrack, TargetKind, Video, VideoRecord

H = W = 20


def square(r0: int, c0: int, size: int = 5) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


OBJ = {1: square(2, 2), 2: square(10, 10)}


def blank_frames(n: int, h: int = H, w: int = W) -> ArrayFrames:
    return ArrayFrames(np.zeros((n, h, w, 3), np.uint8))


def make_record(n_frames: int = 4, expressions=None, annotated=None, video_id: str = "vid") -> VideoRecord:
    """Objects 1 and 2 annotated with masks on `annotated` frames (default all), NONE elsewhere."""
    annotated = set(range(n_frames)) if annotated is None else set(annotated)
    tracks = {
        o: ObjectTrack(o, [FrameTarget(TargetKind.MASK, mask=ArrayMask(m)) if t in annotated else FrameTarget()
                           for t in range(n_frames)])
        for o, m in OBJ.items()
    }
    if expressions is None:
        expressions = [Expression("a", "the top left square", [1]), Expression("b", "both squares", [1, 2]),
                       Expression("n", "a purple elephant", [])]
    return VideoRecord(Video(video_id, blank_frames(n_frames), H, W), tracks, expressions, split="val")


def palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    im.save(path)


@pytest.fixture
def tiny_davis(tmp_path) -> Path:
    """A 3-frame DAVIS-layout dataset on disk ("sq": objects 1 and 2) with one expression per object."""
    root = tmp_path / "davis"
    d = root / "DAVIS"
    (d / "ImageSets" / "2017").mkdir(parents=True)
    (d / "ImageSets" / "2017" / "val.txt").write_text("sq\n")
    labels = OBJ[1].astype(np.uint8) + 2 * OBJ[2].astype(np.uint8)
    frames = [f"{i:05d}" for i in range(3)]
    for name in frames:
        (d / "JPEGImages" / "480p" / "sq").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(d / "JPEGImages" / "480p" / "sq" / f"{name}.jpg")
        palette_png(d / "Annotations" / "480p" / "sq" / f"{name}.png", labels)
    meta = {"videos": {"sq": {"expressions": {"0": {"exp": "left square", "obj_id": "1"},
                                              "1": {"exp": "right square", "obj_id": "2"}}, "frames": frames}}}
    (root / "meta_expressions" / "valid").mkdir(parents=True)
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text(json.dumps(meta))
    return root


class _Tiny:
    """Namespace handed to tests (conftest modules are not importable by name)."""

    H, W, OBJ = H, W, OBJ
    square = staticmethod(square)
    make_record = staticmethod(make_record)
    palette_png = staticmethod(palette_png)


@pytest.fixture
def tiny() -> _Tiny:
    return _Tiny()
