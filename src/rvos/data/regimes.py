"""Supervision regimes: functions records -> records that remove what a regime does not pay for.

Per object track (a frame target is MASK, BOX or NONE; an empty mask / a box of None means "annotated as not
visible"; NONE frames, e.g. the unannotated frames of A2D, stay NONE in every regime):

- `full`: the targets as read (dense masks where the dataset has them).
- `spans`: the targets of `full` plus the expressions' temporal spans (`Expression.spans` and the per-object
  `object_spans`, rvos.data.spans). Every other regime sets both to None: marking when a sentence holds is
  annotation work too, so only the regime that pays for it (see rvos.data.cost) keeps it.
- `mask_box` (WRVOS Weak_M+B): the mask on the frame where the object first appears (the first frame whose mask
  is non-empty), a box computed from the mask (`box_from_mask`) on every other annotated frame; box=None where
  the object is not visible. The paper also keeps the box of the mask frame; it follows from the mask, so the
  MASK target alone carries it.
- `mask_box_random` (WRVOS Table VIII): as `mask_box`, but the mask frame is drawn uniformly among the frames
  where the mask is non-empty; the draw depends only on (seed, video id, object id), not on record order.
- `box`: a box on every annotated frame, no mask.
- `mask`: the first-appearance mask only (WRVOS Weak_M); every other frame NONE.
- `text`: every frame NONE and no MaskRef or box anywhere: a method cannot see a mask or a box. Expressions
  (text, obj_ids, augmented positives and hard negatives) stay.

Cost of applying: `full`, `spans` and `text` touch no pixels. `mask` loads the masks of a track in frame order up
to its first non-empty one. `mask_box`, `mask_box_random` and `box` load every mask once (a box needs pixels);
the mask kept on the mask frame stays the dataset's lazy MaskRef, so no pixels are held afterwards. Pass one
`MaskBoxes` to several calls (as `compare_regimes` does) and each mask is decoded once in all.
Inputs are never mutated: every record, track, target and expression returned is new (MaskRefs are shared).
"""
from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Optional

import numpy as np

from rvos.data.types import (
    Expression,
    FrameTarget,
    MaskRef,
    ObjectTrack,
    Records,
    TargetKind,
    VideoRecord,
    box_from_mask,
)
from rvos.errors import ConfigError, DatasetError

Box = tuple[float, float, float, float]


class MaskBoxes:
    """Memo of `box_from_mask(ref.load())` per MaskRef (identity), so each mask is decoded at most once.

    Holds a reference to every MaskRef it has seen (ids stay unique) and 4 floats per mask, never the pixels."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[MaskRef, Optional[Box]]] = {}
        self.loads = 0  # masks decoded so far (for tests and for reporting cost)

    def box(self, ref: MaskRef) -> Optional[Box]:
        hit = self._memo.get(id(ref))
        if hit is not None and hit[0] is ref:
            return hit[1]
        box = box_from_mask(ref.load())
        self.loads += 1
        self._memo[id(ref)] = (ref, box)
        return box

    def prefetch(self, records: Records, workers: int = 2) -> None:
        """Decode every MASK target of `records` now, a video per worker thread (image decoding releases the
        GIL), frames in order and all objects of a frame together, so readers' per-PNG caches hit."""

        def one(rec: VideoRecord) -> list[tuple[MaskRef, Optional[Box]]]:
            n = max((len(tr.targets) for tr in rec.tracks.values()), default=0)
            refs = [tr.targets[i].mask for i in range(n) for tr in rec.tracks.values()
                    if i < len(tr.targets) and tr.targets[i].kind == TargetKind.MASK]
            return [(r, box_from_mask(r.load())) for r in refs if r is not None and id(r) not in self._memo]

        with ThreadPoolExecutor(max(1, workers)) as pool:
            for pairs in pool.map(one, records):
                for ref, b in pairs:
                    if id(ref) not in self._memo:
                        self.loads += 1
                        self._memo[id(ref)] = (ref, b)


def _mask_ref(t: FrameTarget, rec: VideoRecord, track: ObjectTrack, i: int) -> MaskRef:
    if t.mask is None:
        raise DatasetError(f"video {rec.video_id!r} object {track.obj_id} frame {i}: MASK target without a mask")
    return t.mask


def _first_mask_frame(rec: VideoRecord, track: ObjectTrack, boxes: MaskBoxes) -> Optional[int]:
    """Index of the first frame whose mask is non-empty (loads masks in frame order, stops there)."""
    for i, t in enumerate(track.targets):
        if t.kind == TargetKind.MASK and boxes.box(_mask_ref(t, rec, track, i)) is not None:
            return i
    return None


def _as_box(t: FrameTarget, rec: VideoRecord, track: ObjectTrack, i: int, boxes: MaskBoxes) -> FrameTarget:
    if t.kind == TargetKind.MASK:
        return FrameTarget(TargetKind.BOX, box=boxes.box(_mask_ref(t, rec, track, i)))
    if t.kind == TargetKind.BOX:
        return FrameTarget(TargetKind.BOX, box=None if t.box is None else tuple(map(float, t.box)))
    return FrameTarget(TargetKind.NONE)


def _copy_target(t: FrameTarget) -> FrameTarget:
    return FrameTarget(t.kind, mask=t.mask, box=None if t.box is None else tuple(t.box))


def _copy_expr(e: Expression, keep_spans: bool) -> Expression:
    spans = [tuple(s) for s in e.spans] if keep_spans and e.spans is not None else None
    obj_spans = None
    if keep_spans and e.object_spans is not None:
        obj_spans = {o: [tuple(s) for s in lst] for o, lst in e.object_spans.items()}
    return replace(e, obj_ids=list(e.obj_ids), spans=spans, object_spans=obj_spans,
                   augmented_positives=list(e.augmented_positives), hard_negatives=list(e.hard_negatives))


TrackFn = Callable[[VideoRecord, ObjectTrack], list[FrameTarget]]


def _map(records: Records, track_fn: TrackFn, keep_spans: bool = False) -> list[VideoRecord]:
    out = []
    for rec in records:
        tracks = {k: ObjectTrack(tr.obj_id, track_fn(rec, tr), tr.category) for k, tr in rec.tracks.items()}
        out.append(replace(rec, tracks=tracks, expressions=[_copy_expr(e, keep_spans) for e in rec.expressions]))
    return out


def full(records: Records, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    return _map(records, lambda rec, tr: [_copy_target(t) for t in tr.targets])


def spans(records: Records, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    return _map(records, lambda rec, tr: [_copy_target(t) for t in tr.targets], keep_spans=True)


def box(records: Records, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    boxes = boxes or MaskBoxes()
    return _map(records, lambda rec, tr: [_as_box(t, rec, tr, i, boxes) for i, t in enumerate(tr.targets)])


def _mask_plus_boxes(rec: VideoRecord, tr: ObjectTrack, m: Optional[int], boxes: MaskBoxes) -> list[FrameTarget]:
    return [_copy_target(t) if i == m else _as_box(t, rec, tr, i, boxes) for i, t in enumerate(tr.targets)]


def mask_box(records: Records, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    boxes = boxes or MaskBoxes()
    return _map(records, lambda rec, tr: _mask_plus_boxes(rec, tr, _first_mask_frame(rec, tr, boxes), boxes))


def random_mask_frame(rec: VideoRecord, tr: ObjectTrack, seed: int, boxes: MaskBoxes) -> Optional[int]:
    """The frame `mask_box_random` keeps the mask of: uniform among non-empty mask frames, seeded by
    (seed, crc32(video id), object id) so it does not depend on the order of the records."""
    visible = [i for i, t in enumerate(tr.targets)
               if t.kind == TargetKind.MASK and boxes.box(_mask_ref(t, rec, tr, i)) is not None]
    if not visible:
        return None
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(rec.video_id.encode()), tr.obj_id & 0xFFFFFFFF])
    return visible[int(rng.integers(len(visible)))]


def mask_box_random(records: Records, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    boxes = boxes or MaskBoxes()
    return _map(records, lambda rec, tr: _mask_plus_boxes(rec, tr, random_mask_frame(rec, tr, seed, boxes), boxes))


def mask(records: Records, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    boxes = boxes or MaskBoxes()

    def one(rec: VideoRecord, tr: ObjectTrack) -> list[FrameTarget]:
        m = _first_mask_frame(rec, tr, boxes)
        return [_copy_target(t) if i == m else FrameTarget(TargetKind.NONE) for i, t in enumerate(tr.targets)]

    return _map(records, one)


def text(records: Records, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    return _map(records, lambda rec, tr: [FrameTarget(TargetKind.NONE) for _ in tr.targets])


Regime = Callable[..., list[VideoRecord]]  # (records, seed=0, boxes=None) -> records

REGIMES: dict[str, Regime] = {
    "full": full,
    "spans": spans,
    "mask_box": mask_box,
    "mask_box_random": mask_box_random,
    "box": box,
    "mask": mask,
    "text": text,
}


def apply_regime(records: Records, name: str, seed: int = 0, boxes: Optional[MaskBoxes] = None) -> list[VideoRecord]:
    """Apply the regime called `name` (a key of REGIMES); ConfigError listing the valid names otherwise."""
    return check_regime(name)(records, seed=seed, boxes=boxes)


def check_regime(name: str) -> Regime:
    """The regime function called `name`; ConfigError listing the valid names when there is none."""
    fn = REGIMES.get(name)
    if fn is None:
        raise ConfigError(f"unknown supervision regime {name!r}; valid regimes: {', '.join(REGIMES)}")
    return fn
