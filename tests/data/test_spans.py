"""Temporal spans (TGL, MeViS-M style): the temporal_spans.json layout read beside MeViS and Ref-YouTube-VOS
expressions, its checks, the regimes and the cost, moment-guided sampling and object-level selective supervision."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))  # tests/train/train_helpers.py

from fixtures_layouts import write_mevis, write_ytvos  # noqa: E402
from rvos.data.clips import ClipConfig, ClipDataset, collate, sample_moment_frames  # noqa: E402
from rvos.data.cost import annotation_cost  # noqa: E402
from rvos.data.frames import ArrayFrames  # noqa: E402
from rvos.data.readers import open_dataset  # noqa: E402
from rvos.data.regimes import apply_regime  # noqa: E402
from rvos.data.spans import objects_in, runs, spans_of, union, whole_video_spans  # noqa: E402
from rvos.data.types import ArrayMask, Expression, FrameTarget, ObjectTrack, TargetKind, Video, VideoRecord  # noqa: E402
from rvos.errors import DatasetError  # noqa: E402
from train_helpers import rect  # noqa: E402


def test_union_runs_and_objects_in():
    assert union([[(0, 2), (5, 7)], [(1, 3)], []]) == [(0, 3), (5, 7)]
    assert union([]) == []
    assert runs([False, True, True, False, True]) == [(1, 3), (4, 5)]
    e = Expression("0", "the two cars turning left", [1, 2], spans=[(0, 4), (6, 9)], object_spans={1: [(0, 4)], 2: [(6, 9)]})
    assert objects_in(e, [2, 3, 4]) == [1] and objects_in(e, [4, 5]) == [] and objects_in(e, [3, 6]) == [1, 2]
    assert spans_of(e, 2) == [(6, 9)]
    only = Expression("1", "both", [1, 2], spans=[(0, 2)])  # expression-level spans only: every object has them
    assert spans_of(only, 2) == [(0, 2)] and objects_in(only, [3]) == [] and objects_in(only, [1]) == [1, 2]
    unknown = Expression("2", "it", [1])
    assert spans_of(unknown, 1) is None and objects_in(unknown, [0]) == [1]


def _spans_file(path: Path, videos: dict) -> None:
    path.write_text(json.dumps({"videos": {v: {"expressions": {k: {"obj_spans": o} for k, o in exps.items()}}
                                           for v, exps in videos.items()}}))


def test_ytvos_reads_temporal_spans(tmp_path):
    write_ytvos(tmp_path)
    _spans_file(tmp_path / "meta_expressions" / "train" / "temporal_spans.json", {
        "vid_a": {"0": {"1": [[1, 3]]}, "1": {"1": [[0, 2]], "2": [[1, 2], [3, 4]]}, "2": {}}})
    a, b = open_dataset(tmp_path, split="train")
    e0, e1, e2 = a.expressions
    assert e0.object_spans == {1: [(1, 3)]} and e0.spans == [(1, 3)]
    assert e1.object_spans == {1: [(0, 2)], 2: [(1, 2), (3, 4)]} and e1.spans == [(0, 2), (3, 4)]  # = meta's spans
    assert e2.object_spans == {} and e2.spans == []  # a no-target expression holds nowhere
    assert b.expressions[0].spans is None and b.expressions[0].object_spans is None  # not in the file: unknown
    kept = apply_regime([a], "spans")[0].expressions[1]
    assert kept.object_spans == e1.object_spans and kept.object_spans is not e1.object_spans
    dropped = apply_regime([a], "full")[0].expressions[1]
    assert dropped.spans is None and dropped.object_spans is None
    # cost: per-object intervals where known (1 + 3 + 0 = 4), the expression's own otherwise (vid_b: none)
    assert annotation_cost(apply_regime([a, b], "spans")).spans == 4


def test_mevis_reads_temporal_spans(tmp_path):
    write_mevis(tmp_path, split="train")
    _spans_file(tmp_path / "train" / "temporal_spans.json", {"v1": {"1": {"0": [[0, 3]], "1": [[2, 3]]}}})
    (rec,) = open_dataset(tmp_path, layout="mevis", split="train")
    e = {x.exp_id: x for x in rec.expressions}
    assert e["1"].object_spans == {0: [(0, 3)], 1: [(2, 3)]} and e["1"].spans == [(0, 3)]
    assert e["0"].spans is None


@pytest.mark.parametrize("entry, message", [
    ({"1": {"0": [[0, 9]]}}, "0 <= start < end <= 3"),
    ({"1": {"0": [[0, 2], [1, 3]]}}, "overlap"),
    ({"1": {"7": [[0, 1]]}}, "object 7 is not one the expression refers to"),
    ({"9": {"0": [[0, 1]]}}, "no such expression"),
    ({"1": {"0": "all"}}, "must be [[start, end]"),
])
def test_bad_spans_files_name_the_file(tmp_path, entry, message):
    write_mevis(tmp_path, split="train")
    path = tmp_path / "train" / "temporal_spans.json"
    _spans_file(path, {"v1": entry})
    with pytest.raises(DatasetError, match="temporal_spans.json") as err:
        open_dataset(tmp_path, layout="mevis", split="train")
    assert message in str(err.value)
    path.write_text(json.dumps({"v1": {}}))
    with pytest.raises(DatasetError, match="temporal_spans.json must be a JSON object with key"):
        open_dataset(tmp_path, layout="mevis", split="train")


def test_spans_file_must_agree_with_meta_spans(tmp_path):
    write_ytvos(tmp_path)  # expression "1" has spans [[0, 2], [3, 4]] in meta_expressions.json
    _spans_file(tmp_path / "meta_expressions" / "train" / "temporal_spans.json", {"vid_a": {"1": {"1": [[0, 4]]}}})
    with pytest.raises(DatasetError, match="meta_expressions gives the expression's spans"):
        open_dataset(tmp_path, split="train")


def two_car_record(n: int = 8, h: int = 16, w: int = 24) -> VideoRecord:
    """Object 1 (left square) referred in frames 0-3, object 2 (right square) in frames 5-7; both always visible."""
    frames = np.full((n, h, w, 3), 90, np.uint8)
    m1, m2 = rect(h, w, 2, 6, 2, 6), rect(h, w, 8, 12, 14, 20)
    tracks = {1: ObjectTrack(1, [FrameTarget(TargetKind.MASK, ArrayMask(m1)) for _ in range(n)]),
              2: ObjectTrack(2, [FrameTarget(TargetKind.MASK, ArrayMask(m2)) for _ in range(n)])}
    exps = [Expression("0", "the cars that turn", [1, 2], spans=[(0, 4), (5, 8)], object_spans={1: [(0, 4)], 2: [(5, 8)]}),
            Expression("1", "nothing", [], spans=[])]
    return VideoRecord(Video("cars", ArrayFrames(frames), h, w), tracks, exps)


def test_oss_targets_only_the_objects_referred_within_the_clip():
    rec = two_car_record()
    h, w = 16, 24
    m1, m2 = rect(h, w, 2, 6, 2, 6), rect(h, w, 8, 12, 14, 20)
    base = dict(num_frames=3, size=None, augment=False, negatives=False)
    full = ClipDataset([rec], ClipConfig(**base))
    oss = ClipDataset([rec], ClipConfig(**base, oss=True))
    for idx in ([0, 1, 2], [5, 6, 7], [4]):
        clip = full.load_clip(rec, rec.expressions[0], np.array(idx))
        assert (clip.masks == (m1 | m2)).all()  # without OSS: every referred object, every frame
    # with OSS, the clip ClipDataset samples (a window of 3 of 8 frames) gets the selected objects only
    for index in range(6):
        for epoch in range(4):
            oss.set_epoch(epoch)
            s = oss[index % len(oss)]
            idx = s.frame_index.tolist()
            want = (m1 if any(t < 4 for t in idx) else 0) | (m2 if any(t >= 5 for t in idx) else 0)
            assert np.array_equal(s.masks.numpy().astype(bool), np.broadcast_to(want, s.masks.shape))
            assert s.positive and s.span_known
            assert s.in_span.tolist() == [t != 4 for t in idx]
    # frame 4 alone refers to neither: an empty target, still a positive item
    one = ClipDataset([rec], ClipConfig(**{**base, "num_frames": 1}, oss=True))
    for epoch in range(12):
        one.set_epoch(epoch)
        s = one[0]
        if int(s.frame_index[0]) == 4:
            assert not s.masks.any() and s.positive and not s.present.any()
            break
    else:
        pytest.fail("frame 4 was never sampled")


def test_oss_with_instances_refers_to_the_objects_referred_within_the_clip():
    """Object-centric targets (data.clip.instances) under OSS: every object is still drawn, and `refers` marks
    the same objects as the union target (those the expression refers to within the clip)."""
    rec = two_car_record()
    base = dict(num_frames=3, size=None, augment=False, negatives=False, instances=True)
    for oss in (False, True):
        ds = ClipDataset([rec], ClipConfig(**base, oss=oss))
        seen = set()
        for epoch in range(8):
            ds.set_epoch(epoch)
            s = ds[0]
            idx = s.frame_index.tolist()
            assert s.instance_ids == [1, 2] and set(s.instances.unique().tolist()) == {0, 1, 2}
            want = [True, True] if not oss else [any(t < 4 for t in idx), any(t >= 5 for t in idx)]
            assert s.refers.tolist() == want, (oss, idx)
            seen.add(tuple(want))
        if oss:
            assert len(seen) > 1  # windows on either side of the spans were sampled
    batch = collate([ds[0], ds[0]])
    assert batch.refers.shape == (2, 2) and batch.span_known.tolist() == [True, True]


def test_tgl_parts_refused_with_the_objects_head():
    from rvos.errors import ConfigError
    from rvos.models.config import ModelConfig

    for part in ("moment", "propagation"):
        with pytest.raises(ConfigError, match="head='objects'"):
            ModelConfig(vision="tiny", text="tiny", head="objects", **{part: True})


def test_moment_sampling_straddles_a_span_boundary():
    rng = np.random.default_rng(0)
    inside = {t for s, e in [(6, 9)] for t in range(s, e)}
    for _ in range(200):
        idx, valid = sample_moment_frames(20, 5, [(6, 9)], rng)
        assert valid.all() and list(idx) == list(range(idx[0], idx[0] + 5))
        flags = {t in inside for t in idx}
        assert flags == {True, False}
    idx, _ = sample_moment_frames(20, 5, [(0, 20)], rng)  # no boundary: a plain window
    assert len(idx) == 5
    idx, valid = sample_moment_frames(3, 5, [(1, 2)], rng)  # short video: padding as sample_frames
    assert list(idx) == [0, 1, 2, 2, 2] and valid.tolist() == [True] * 3 + [False] * 2
    rec = two_car_record()
    ds = ClipDataset([rec], ClipConfig(num_frames=2, size=None, augment=False, sampling="moment"))
    batch = collate([ds[0], ds[1]])
    assert batch.span_known.tolist() == [True, True]
    assert set(batch.in_span[0].tolist()) == {True, False}  # the positive straddles a boundary
    assert not batch.in_span[1].any()  # the negative holds nowhere


def test_whole_video_spans():
    rec = two_car_record()
    (out,) = whole_video_spans([rec])
    assert out.expressions[0].spans == [(0, 8)] and out.expressions[0].object_spans == {1: [(0, 8)], 2: [(0, 8)]}
    assert out.expressions[1].spans == [] and rec.expressions[0].spans == [(0, 4), (5, 8)]  # input untouched
