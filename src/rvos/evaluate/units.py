"""Scoring units: what a protocol scores (an object through a video, or an expression) and on which frames,
with the ground-truth mask of a unit in a frame (the union of the referred objects' masks)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from rvos.data.types import TargetKind, VideoRecord
from rvos.errors import DatasetError


@dataclass(frozen=True)
class Unit:
    """An object (`kind` "object", key = obj_id) or an expression (`kind` "expression", key = exp_id) of a video,
    scored on `frames` (frame indices). `obj_ids` empty: a no-target expression."""

    video_id: str
    key: Union[int, str]
    obj_ids: tuple[int, ...]
    frames: tuple[int, ...]
    kind: str

    @property
    def name(self) -> str:
        return f"{self.video_id}_{self.key}"

    @property
    def positive(self) -> bool:
        return len(self.obj_ids) > 0


def annotated_frames(record: VideoRecord, obj_ids: Sequence[int]) -> list[int]:
    """Frames where every referred object has a mask annotation (an empty mask = annotated as absent). For a
    no-target expression: frames where any object of the video has one, or every frame when none has."""
    for o in obj_ids:
        if o not in record.tracks:
            raise DatasetError(f"video {record.video_id!r} has no object {o} (objects: {sorted(record.tracks)})")
    n = len(record.video)
    if obj_ids:
        return [t for t in range(n) if all(record.tracks[o].targets[t].kind == TargetKind.MASK for o in obj_ids)]
    frames = [t for t in range(n) if any(tr.targets[t].kind == TargetKind.MASK for tr in record.tracks.values())]
    return frames or list(range(n))


def object_units(record: VideoRecord) -> list[Unit]:
    """One unit per object track that has mask annotations, in obj_id order (DAVIS `<seq>_<obj_id>` rows)."""
    units = []
    for o in sorted(record.tracks):
        frames = annotated_frames(record, [o])
        if frames:
            units.append(Unit(record.video_id, o, (o,), tuple(frames), "object"))
    return units


def expression_units(record: VideoRecord) -> list[Unit]:
    """One unit per expression; a positive expression without annotated frames gets no frames."""
    return [Unit(record.video_id, e.exp_id, tuple(e.obj_ids), tuple(annotated_frames(record, e.obj_ids)), "expression")
            for e in record.expressions]


def gt_mask(record: VideoRecord, unit: Unit, t: int) -> np.ndarray:  # bool [H, W]
    """Union of the referred objects' masks in frame t (all False for a no-target unit)."""
    v = record.video
    out = np.zeros((v.height, v.width), dtype=bool)
    for o in unit.obj_ids:
        m = record.tracks[o].targets[t].load_mask()
        if m.shape != out.shape:
            raise DatasetError(f"ground-truth mask of object {o}, frame {t} of video {v.video_id!r} is "
                               f"{m.shape[1]}x{m.shape[0]}, expected {v.width}x{v.height}")
        if len(unit.obj_ids) == 1:
            return np.asarray(m, dtype=bool)
        out |= m
    return out
