"""Typed records every reader produces and everything downstream consumes.

A dataset is a list of `VideoRecord`s. Nothing downstream of a reader knows which benchmark a record came
from. Masks are loaded lazily (a `MaskRef` knows where its pixels are), so a reader of a 3,000-video dataset
returns at once and a regime can change targets without touching pixels.

Conventions
- Frame indices are positions in `Video.frame_names` (0-based), not file names.
- Boxes are `(x0, y0, x1, y1)` in pixels of the original frame, floats, x1/y1 exclusive
  (a one-pixel object at column 3, row 5 has box (3, 5, 4, 6)).
- Temporal spans are half-open frame-index intervals `(start, end)`.
- Object ids are ints (palette index in DAVIS / Ref-YouTube-VOS layouts).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from rvos.errors import DatasetError


class TargetKind(enum.IntEnum):
    """What a frame of an object track is annotated with."""

    NONE = 0  # not annotated (or annotation removed by a supervision regime)
    BOX = 1  # a box; `box is None` means "annotated as not visible in this frame"
    MASK = 2  # a mask; an empty mask means "annotated as not visible in this frame"


class MaskRef:
    """Lazily loaded binary mask of one object in one frame. Subclasses implement `load()`."""

    def load(self) -> np.ndarray:  # bool [H, W]
        raise NotImplementedError


@dataclass(frozen=True)
class ArrayMask(MaskRef):
    """A mask already in memory (synthetic data, tests, pseudo masks)."""

    array: np.ndarray  # bool [H, W]

    def load(self) -> np.ndarray:
        return np.asarray(self.array, dtype=bool)

    def __hash__(self) -> int:  # arrays are unhashable; identity is enough here
        return id(self)


@dataclass(frozen=True)
class FnMask(MaskRef):
    """A mask produced by a callable (e.g. decode one RLE, read one HDF5 dataset) on demand."""

    fn: Callable[[], np.ndarray]
    source: str = ""  # the file it comes from, for error messages

    def load(self) -> np.ndarray:
        return np.asarray(self.fn(), dtype=bool)


def box_from_mask(mask: np.ndarray) -> Optional[tuple[float, float, float, float]]:
    """Tight box (x0, y0, x1, y1), exclusive max, of a bool mask; None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


@dataclass
class FrameTarget:
    """The annotation of one object in one frame."""

    kind: TargetKind = TargetKind.NONE
    mask: Optional[MaskRef] = None  # set when kind == MASK
    box: Optional[tuple[float, float, float, float]] = None  # set when kind == BOX and the object is visible

    def load_mask(self) -> np.ndarray:
        if self.kind != TargetKind.MASK or self.mask is None:
            raise ValueError(f"frame target of kind {self.kind.name} carries no mask")
        return self.mask.load()

    def visible(self) -> bool:
        """Whether the annotation says the object is in the frame (loads the mask for MASK targets)."""
        if self.kind == TargetKind.MASK:
            return bool(self.load_mask().any())
        if self.kind == TargetKind.BOX:
            return self.box is not None
        raise ValueError("a NONE target says nothing about visibility")


@dataclass
class ObjectTrack:
    """One object through a video: one FrameTarget per frame of the video."""

    obj_id: int
    targets: list[FrameTarget]
    category: Optional[str] = None

    def annotated_frames(self) -> list[int]:
        return [i for i, t in enumerate(self.targets) if t.kind != TargetKind.NONE]


@dataclass
class Expression:
    """A referring sentence. `obj_ids` empty means it refers to nothing in this video (negative / no-target)."""

    exp_id: str
    text: str
    obj_ids: list[int]
    spans: Optional[list[tuple[int, int]]] = None  # frames where the sentence holds, half-open; None = unknown
    # per referred object, the frames in which the sentence refers to it (MeViS-M style, rvos.data.spans); None =
    # unknown (then every object has `spans`); `spans` is their union
    object_spans: Optional[dict[int, list[tuple[int, int]]]] = None
    augmented_positives: list[str] = field(default_factory=list)  # paraphrases (WSRVOS augmentation)
    hard_negatives: list[str] = field(default_factory=list)  # category/attribute/action changed

    @property
    def positive(self) -> bool:
        return len(self.obj_ids) > 0


class FrameSource:
    """Reads the frames of a video lazily. Subclasses implement `__len__`, `read(i)` and `names`."""

    names: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:  # uint8 [H, W, 3], RGB
        raise NotImplementedError


@dataclass
class Video:
    """A video: its frames (lazily readable), size and frame rate."""

    video_id: str
    source: FrameSource
    height: int
    width: int
    fps: float = 24.0

    @property
    def frame_names(self) -> list[str]:
        return self.source.names

    def __len__(self) -> int:
        return len(self.source)

    def frame(self, index: int) -> np.ndarray:  # uint8 [H, W, 3], RGB
        return self.source.read(index)


@dataclass
class VideoRecord:
    """A video with its object tracks and its expressions: the unit readers produce."""

    video: Video
    tracks: dict[int, ObjectTrack]
    expressions: list[Expression]
    split: str = "train"

    @property
    def video_id(self) -> str:
        return self.video.video_id

    def with_tracks(self, tracks: dict[int, ObjectTrack]) -> "VideoRecord":
        return replace(self, tracks=tracks)


def require_file(path: Path, what: str) -> Path:
    """Raise DatasetError naming `path` and what it should be when it does not exist."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"missing {what}: {path}")
    return path


Records = Sequence[VideoRecord]
