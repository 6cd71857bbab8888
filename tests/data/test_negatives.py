"""Negative pairing for R2-VOS: training sampler and R2 evaluation pairs."""
import numpy as np
import pytest

from rvos.data.negatives import r2_pairing, r2_records, sample_negatives, training_pairs, with_negatives
from rvos.data.types import Expression, FrameSource, FrameTarget, ObjectTrack, TargetKind, Video, VideoRecord
from rvos.errors import DatasetError


class NoFrames(FrameSource):
    def __init__(self, n: int):
        self.names = [f"{i:05d}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> np.ndarray:
        raise AssertionError("pairing must not read frames")


def record(vid: str, objects: dict, exps: list) -> VideoRecord:
    """objects: obj_id -> category; exps: (text, obj_ids)."""
    tracks = {o: ObjectTrack(o, [FrameTarget(TargetKind.NONE)] * 3, c) for o, c in objects.items()}
    return VideoRecord(Video(vid, NoFrames(3), 8, 8), tracks,
                       [Expression(str(i), text, list(ids)) for i, (text, ids) in enumerate(exps)])


def records() -> list[VideoRecord]:
    return [
        record("cat", {1: "cat", 2: "sofa"}, [("a grey cat", [1]), ("the sofa", [2]), ("a flying dog", [])]),
        record("dog", {1: "dog"}, [("a brown dog running", [1]), ("the dog", [1])]),
        record("car", {1: "car", 2: "person"}, [("a red car", [1]), ("a man walking", [2])]),
        record("cat2", {1: "cat"}, [("a black cat", [1]), ("the sofa", [1])]),  # "the sofa" text also here
        record("bird", {1: "bird"}, [("a small bird", [1])]),
    ]


def check_unrelated(recs, rec, exp):
    """The negative's text is not a positive of rec, and its source's referred category is not in rec."""
    by_id = {r.video_id: r for r in recs}
    src_vid, src_exp = exp.exp_id[len("neg-"):].rsplit("-", 1)
    src = by_id[src_vid]
    assert src_vid != rec.video_id
    source = next(e for e in src.expressions if e.exp_id == src_exp)
    assert source.text == exp.text and source.positive and not exp.positive
    assert exp.text not in {e.text for e in rec.expressions if e.positive}
    cats = {src.tracks[o].category for o in source.obj_ids}
    assert not cats & {t.category for t in rec.tracks.values()}


def test_sampler_pairs_unrelated_and_is_seeded():
    recs = records()
    items = sample_negatives(recs, ratio=1.0, seed=3)
    assert items, "no negatives sampled"
    for rec, exp in items:
        check_unrelated(recs, rec, exp)
    key = [(r.video_id, e.exp_id) for r, e in items]
    assert key == [(r.video_id, e.exp_id) for r, e in sample_negatives(recs, ratio=1.0, seed=3)]
    other = [[(r.video_id, e.exp_id) for r, e in sample_negatives(recs, 1.0, seed=s)] for s in range(4, 8)]
    assert any(o != key for o in other)
    per_video = {v: sum(r.video_id == v for r, _ in items) for v in ("cat", "dog", "car", "bird")}
    # ratio 1: as many negatives as positives (bird: 1, cat: 2, car: 2; dog: 2 unless the pool runs out)
    assert per_video["bird"] == 1 and per_video["cat"] == 2 and per_video["car"] == 2 and per_video["dog"] == 2
    for v in {r.video_id for r, _ in items}:
        ids = [e.exp_id for r, e in items if r.video_id == v]
        assert len(ids) == len(set(ids))  # no repeated negative within a video


def test_sampler_ratio_and_categories():
    recs = records()
    assert sample_negatives(recs, ratio=0.0) == []
    half = sample_negatives(recs, ratio=0.5, seed=0)
    assert 2 <= len(half) <= 7  # each video rounds 0.5 * positives stochastically (total 9 positives)
    # without categories, "a black cat" may go to the cat video; with them it never does
    with_cats = {e.text for r, e in sample_negatives(recs, ratio=3.0, seed=1) if r.video_id == "cat"}
    assert "a black cat" not in with_cats
    no_cats = set()
    for s in range(20):
        no_cats |= {e.text for r, e in sample_negatives(recs, 3.0, seed=s, use_categories=False) if r.video_id == "cat"}
    assert "a black cat" in no_cats and "the sofa" not in no_cats  # same text as a positive: never a negative


def test_training_pairs_keep_dataset_negatives_and_feed_records():
    recs = records()
    pairs = training_pairs(recs, ratio=1.0, seed=0)
    own_neg = [(r.video_id, e.exp_id) for r, e in pairs if not e.positive and not e.exp_id.startswith("neg-")]
    assert own_neg == [("cat", "2")]  # "a flying dog" stays a negative of its own video
    assert len([p for p in pairs if p[1].positive]) == 9
    assert len(training_pairs(recs, keep_dataset_negatives=False, ratio=0.0)) == 9
    out = with_negatives(recs, [p for p in pairs if p[1].exp_id.startswith("neg-")])
    assert [len(r.expressions) for r in out] == [3 + 2, 2 + 2, 2 + 2, 2 + 2, 1 + 1]
    assert [len(r.expressions) for r in recs] == [3, 2, 2, 2, 1]  # inputs untouched
    with pytest.raises(DatasetError):
        with_negatives(recs, [(recs[0], Expression("2", "clash", []))])


def test_r2_pairing_is_a_deterministic_derangement():
    recs = records()
    p = r2_pairing(recs, seed=0)
    assert sorted(p.negative_video) == sorted(p.negative_video.values())  # every video is some video's negative
    assert all(k != v for k, v in p.negative_video.items())
    assert p.unpaired == []
    own = [(x.record.video_id, x.expression.exp_id) for x in p.pairs if x.source_video == x.record.video_id]
    assert len(own) == sum(len(r.expressions) for r in recs)  # every expression on its own video, unchanged
    negs = [x for x in p.pairs if x.source_video != x.record.video_id]
    assert len(negs) == 9  # each positive expression on exactly one other video
    for x in negs:
        check_unrelated(recs, x.record, x.expression)
    again = r2_pairing(recs, seed=0)
    assert [(x.record.video_id, x.expression.exp_id) for x in again.pairs] == \
           [(x.record.video_id, x.expression.exp_id) for x in p.pairs]


def test_r2_records_and_unpairable():
    recs = records()
    out = r2_records(recs, seed=1)
    assert sum(len(r.expressions) for r in out) == 10 + 9
    assert sum(not e.positive for r in out for e in r.expressions) == 1 + 9
    # two videos that both hold a dog: a dog expression has no unrelated video
    pair = [record("a", {1: "dog"}, [("a dog", [1])]), record("b", {1: "dog", 2: "ball"}, [("a ball", [2])])]
    p = r2_pairing(pair)
    assert p.unpaired == [("a", "0")] and p.negative_video == {"a": "b", "b": "a"}
    assert [(x.record.video_id, x.expression.text) for x in p.pairs if not x.positive] == [("a", "a ball")]
    with pytest.raises(DatasetError):
        r2_pairing(recs[:1])


def test_with_negatives_gives_every_copy_of_a_repeated_video_its_negatives():
    recs = records()
    pairs = sample_negatives(recs, 1.0, seed=0)
    repeated = recs[:2] * 3 + recs[2:]  # as data.repeat lays the records out
    out = with_negatives(repeated, pairs)
    for r, o in zip(repeated, out):
        negs = [e.text for rec, e in pairs if rec.video_id == r.video_id]
        assert [e.text for e in o.expressions] == [e.text for e in r.expressions] + negs
    with pytest.raises(DatasetError, match="not in the records"):
        with_negatives(recs[:1], pairs)
