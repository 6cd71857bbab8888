"""Supervision regimes pinned frame by frame on hand-built records (tiny ArrayMask masks)."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from rvos.data.frames import ArrayFrames
from rvos.data.regimes import REGIMES, MaskBoxes, apply_regime, random_mask_frame
from rvos.data.types import (
    ArrayMask,
    Expression,
    FrameTarget,
    MaskRef,
    ObjectTrack,
    TargetKind,
    Video,
    VideoRecord,
)
from rvos.errors import ConfigError, DatasetError

H, W = 6, 8
M, B, N = TargetKind.MASK, TargetKind.BOX, TargetKind.NONE


def blank_frames(n: int, h: int = H, w: int = W) -> ArrayFrames:
    return ArrayFrames(np.zeros((n, h, w, 3), np.uint8))


class CountingMask(MaskRef):
    """An in-memory mask that counts how often its pixels are loaded."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.loads = 0

    def load(self) -> np.ndarray:
        self.loads += 1
        return self.array.astype(bool)


def mk(*cells: tuple[int, int, int, int]) -> CountingMask:
    """Mask with the given (row0, row1, col0, col1) rectangles set (exclusive ends)."""
    a = np.zeros((H, W), bool)
    for r0, r1, c0, c1 in cells:
        a[r0:r1, c0:c1] = True
    return CountingMask(a)


def build() -> list[VideoRecord]:
    # v1 obj 1: absent in frame 0, visible in frames 1-3 (frame 3 touches the top, bottom and left borders).
    o1 = [mk(), mk((1, 3, 2, 5)), mk((2, 4, 3, 6)), mk((0, 6, 0, 2))]
    # v1 obj 2: one pixel in the bottom-right corner, occluded, one pixel top-left, not annotated.
    o2 = [mk((5, 6, 7, 8)), mk(), mk((0, 1, 0, 1))]
    # v2 obj 3: sparse annotation (A2D-like): frames 1 and 3 annotated, empty in frame 3.
    o3 = [mk((2, 4, 2, 4)), mk()]
    t1 = ObjectTrack(1, [FrameTarget(M, mask=m) for m in o1], "car")
    t2 = ObjectTrack(2, [FrameTarget(M, mask=m) for m in o2] + [FrameTarget(N)], "person")
    t3 = ObjectTrack(3, [FrameTarget(N), FrameTarget(M, mask=o3[0]), FrameTarget(N), FrameTarget(M, mask=o3[1])])
    e = [
        Expression("0", "the red car", [1], spans=[(1, 4)], augmented_positives=["a red car"],
                   hard_negatives=["the blue car"]),
        Expression("1", "the car and the man", [1, 2], spans=[(0, 2), (2, 4)]),
        Expression("2", "a dog jumping", [], spans=[]),
    ]
    v1 = VideoRecord(Video("v1", blank_frames(4), H, W), {1: t1, 2: t2}, e)
    v2 = VideoRecord(Video("v2", blank_frames(4), H, W), {3: t3}, [Expression("0", "a ball", [3])])
    return [v1, v2]


def kinds(rec: VideoRecord, obj: int) -> list[TargetKind]:
    return [t.kind for t in rec.tracks[obj].targets]


def boxes_of(rec: VideoRecord, obj: int) -> list:
    return [t.box for t in rec.tracks[obj].targets]


def snapshot(records):
    """Everything a regime could mutate, with MaskRefs by identity."""
    return [(r.video_id, r.split, {k: (t.obj_id, t.category, [(x.kind, id(x.mask), x.box) for x in t.targets])
                                   for k, t in r.tracks.items()}, copy.deepcopy(r.expressions)) for r in records]


def total_loads(records) -> int:
    return sum(t.mask.loads for r in records for tr in r.tracks.values() for t in tr.targets if t.mask is not None)


def test_full_keeps_targets_and_drops_spans():
    recs = build()
    out = apply_regime(recs, "full")
    assert total_loads(recs) == 0  # no pixels touched
    for a, b in zip(recs, out):
        for k in a.tracks:
            assert [(t.kind, t.mask, t.box) for t in a.tracks[k].targets] == \
                   [(t.kind, t.mask, t.box) for t in b.tracks[k].targets]
        assert [e.spans for e in b.expressions] == [None] * len(b.expressions)
        assert [(e.text, e.obj_ids) for e in a.expressions] == [(e.text, e.obj_ids) for e in b.expressions]


def test_spans_keeps_spans_and_dense_targets():
    recs = build()
    out = apply_regime(recs, "spans")
    assert [e.spans for e in out[0].expressions] == [[(1, 4)], [(0, 2), (2, 4)], []]
    assert out[0].expressions[0].spans is not recs[0].expressions[0].spans
    assert kinds(out[0], 1) == [M, M, M, M] and out[0].tracks[1].targets[2].mask is recs[0].tracks[1].targets[2].mask


def test_mask_box_frame_by_frame():
    recs = build()
    out = apply_regime(recs, "mask_box")
    v1, v2 = out
    assert kinds(v1, 1) == [B, M, B, B]
    assert boxes_of(v1, 1) == [None, None, (3.0, 2.0, 6.0, 4.0), (0.0, 0.0, 2.0, 6.0)]
    assert v1.tracks[1].targets[1].mask is recs[0].tracks[1].targets[1].mask  # the lazy ref, not pixels
    assert kinds(v1, 2) == [M, B, B, N]
    assert boxes_of(v1, 2) == [None, None, (0.0, 0.0, 1.0, 1.0), None]
    assert kinds(v2, 3) == [N, M, N, B] and boxes_of(v2, 3) == [None, None, None, None]
    assert all(t.mask is None for t in v1.tracks[1].targets if t.kind == B)
    assert [e.spans for e in v1.expressions] == [None, None, None]
    assert total_loads(recs) == 9  # every mask decoded exactly once
    assert v1.tracks[2].category == "person" and v1.tracks[2].obj_id == 2


def test_box_regime_boxes_from_masks_one_pixel_and_border():
    out = apply_regime(build(), "box")
    v1, v2 = out
    assert kinds(v1, 1) == [B, B, B, B]
    assert boxes_of(v1, 1) == [None, (2.0, 1.0, 5.0, 3.0), (3.0, 2.0, 6.0, 4.0), (0.0, 0.0, 2.0, 6.0)]
    # one pixel at row 5, column 7 (bottom-right corner): x1/y1 exclusive, equal to the frame size
    assert boxes_of(v1, 2) == [(7.0, 5.0, 8.0, 6.0), None, (0.0, 0.0, 1.0, 1.0), None]
    assert kinds(v1, 2) == [B, B, B, N]
    assert kinds(v2, 3) == [N, B, N, B] and boxes_of(v2, 3) == [None, (2.0, 2.0, 4.0, 4.0), None, None]
    assert not any(t.mask is not None for r in out for tr in r.tracks.values() for t in tr.targets)


def test_mask_regime_is_lazy_and_keeps_one_mask():
    recs = build()
    v1, v2 = apply_regime(recs, "mask")
    assert kinds(v1, 1) == [N, M, N, N] and kinds(v1, 2) == [M, N, N, N] and kinds(v2, 3) == [N, M, N, N]
    assert v1.tracks[2].targets[0].mask is recs[0].tracks[2].targets[0].mask
    # loads stop at the first non-empty mask: obj 1 frames 0-1, obj 2 frame 0, obj 3 frame 1
    assert [m.mask.loads for m in recs[0].tracks[1].targets] == [1, 1, 0, 0]
    assert total_loads(recs) == 4


def test_mask_box_random_is_seeded_and_order_independent():
    recs = build()
    a = apply_regime(recs, "mask_box_random", seed=3)
    b = apply_regime(list(reversed(build())), "mask_box_random", seed=3)[::-1]
    for ra, rb in zip(a, b):
        for k in ra.tracks:
            assert kinds(ra, k) == kinds(rb, k) and boxes_of(ra, k) == boxes_of(rb, k)
    chosen_1, chosen_2 = set(), set()
    for seed in range(30):
        v1 = apply_regime(recs, "mask_box_random", seed=seed)[0]
        (m1,) = [i for i, k in enumerate(kinds(v1, 1)) if k == M]
        (m2,) = [i for i, k in enumerate(kinds(v1, 2)) if k == M]
        chosen_1.add(m1), chosen_2.add(m2)
        # every other annotated frame is a box computed from its mask
        assert boxes_of(v1, 1)[m1] is None and all(kinds(v1, 1)[i] == B for i in range(4) if i != m1)
        assert kinds(v1, 2)[3] == N
    assert chosen_1 == {1, 2, 3} and chosen_2 == {0, 2}  # only visible frames, all of them reachable
    assert random_mask_frame(recs[1], recs[1].tracks[3], 0, MaskBoxes()) == 1  # the one visible frame


def test_text_regime_leaves_no_mask_or_box_anywhere():
    recs = build()
    out = apply_regime(recs, "text")
    assert total_loads(recs) == 0
    seen = []

    def walk(x, path):
        assert not isinstance(x, (MaskRef, np.ndarray)), f"{path} holds pixels"
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            if isinstance(x, FrameTarget):
                assert x.kind == N and x.mask is None and x.box is None, path
                seen.append(path)
            for f in dataclasses.fields(x):
                if not (isinstance(x, Video) and f.name == "source"):
                    walk(getattr(x, f.name), f"{path}.{f.name}")
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        else:
            assert x is None or isinstance(x, (str, int, float, bool)), f"{path}: unexpected {type(x)}"

    walk(out, "records")
    assert len(seen) == 12  # every frame of every track was visited
    assert sorted(out[0].tracks) == [1, 2] and out[0].tracks[1].category == "car"
    e = out[0].expressions[0]
    assert (e.text, e.obj_ids, e.augmented_positives, e.hard_negatives, e.spans) == \
           ("the red car", [1], ["a red car"], ["the blue car"], None)
    assert [x.obj_ids for x in out[0].expressions] == [[1], [1, 2], []]


@pytest.mark.parametrize("name", list(REGIMES))
def test_regimes_never_mutate_their_input(name):
    recs = build()
    before = snapshot(recs)
    out = apply_regime(recs, name, seed=1)
    assert snapshot(recs) == before
    for a, b in zip(recs, out):
        assert a is not b and a.tracks is not b.tracks
        for k in a.tracks:
            assert a.tracks[k] is not b.tracks[k] and a.tracks[k].targets is not b.tracks[k].targets
            assert not any(x is y for x, y in zip(a.tracks[k].targets, b.tracks[k].targets))
        assert not any(x is y or x.obj_ids is y.obj_ids for x, y in zip(a.expressions, b.expressions))


def test_box_native_tracks_pass_through():
    t = ObjectTrack(5, [FrameTarget(B, box=(1, 1, 3, 3)), FrameTarget(B), FrameTarget(N)])
    rec = VideoRecord(Video("v", blank_frames(3), H, W), {5: t}, [])
    assert boxes_of(apply_regime([rec], "mask_box")[0], 5) == [(1.0, 1.0, 3.0, 3.0), None, None]
    assert kinds(apply_regime([rec], "mask")[0], 5) == [N, N, N]  # no mask to keep


def test_unknown_regime_and_broken_mask_target():
    with pytest.raises(ConfigError, match="valid regimes: full, spans, mask_box, mask_box_random, box, mask, text"):
        apply_regime(build(), "dense")
    bad = VideoRecord(Video("v9", blank_frames(1), H, W), {1: ObjectTrack(1, [FrameTarget(M)])}, [])
    with pytest.raises(DatasetError, match="v9.*object 1 frame 0"):
        apply_regime([bad], "box")


def test_mask_boxes_memo_decodes_once():
    m = ArrayMask(np.eye(3, dtype=bool))
    memo = MaskBoxes()
    assert memo.box(m) == (0.0, 0.0, 3.0, 3.0) and memo.box(m) == (0.0, 0.0, 3.0, 3.0)
    assert memo.loads == 1


def test_prefetch_decodes_frame_major_once_and_matches():
    recs = build()
    log = []
    for r in recs:
        for k, tr in r.tracks.items():
            for i, t in enumerate(tr.targets):
                if t.mask is not None:
                    t.mask.load = (lambda m=t.mask, tag=(r.video_id, i, k): (log.append(tag), m.array.astype(bool))[1])
    memo = MaskBoxes()
    memo.prefetch(recs, workers=1)
    assert log[:7] == [("v1", 0, 1), ("v1", 0, 2), ("v1", 1, 1), ("v1", 1, 2), ("v1", 2, 1), ("v1", 2, 2), ("v1", 3, 1)]
    assert len(log) == 9 and memo.loads == 9
    memo.prefetch(recs, workers=2)
    out = apply_regime(recs, "box", boxes=memo)
    assert len(log) == 9  # nothing decoded twice
    assert boxes_of(out[0], 2) == [(7.0, 5.0, 8.0, 6.0), None, (0.0, 0.0, 1.0, 1.0), None]
