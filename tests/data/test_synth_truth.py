"""rvos.data.synth.truth: a negative pair is kept only when the sentence's noun phrase matches no object of the
video, so a category-free sentence ("all the yellow things") is never paired with a video where it is true."""
from __future__ import annotations

import json

import numpy as np

from rvos.data.negatives import r2_pairing, sample_negatives
from rvos.data.synth import SynthConfig, generate
from rvos.data.synth.truth import SynthTruth
from rvos.data.types import Expression, FrameSource, ObjectTrack, Video, VideoRecord


class NoFrames(FrameSource):
    names = ["00000"]

    def __len__(self) -> int:
        return 1

    def read(self, index: int) -> np.ndarray:
        raise AssertionError("pairing must not read frames")


def rec(vid, cats, exps):
    tracks = {i + 1: ObjectTrack(i + 1, [], c) for i, c in enumerate(cats)}
    return VideoRecord(Video(vid, NoFrames(), 8, 8), tracks, [Expression(str(k), t, ids) for k, (t, ids) in enumerate(exps)])


def test_may_refer_by_noun_phrase():
    truth = SynthTruth(
        {"tri": [{"category": "triangle", "colour": "yellow", "size": "big", "texture": "plain"}],
         "car": [{"category": "car", "colour": "yellow", "size": "small", "texture": "dotted"}],
         "star": [{"category": "star", "colour": "blue", "size": "big", "texture": "plain"}]},
        {("tri", "0"): {"category": None, "colour": "yellow", "size": None, "texture": None},  # all the yellow things
         ("tri", "1"): {"category": "triangle", "colour": None, "size": None, "texture": None}})
    yellow, triangle = Expression("0", "all the yellow things", [1]), Expression("1", "the triangle", [1])
    assert truth.may_refer("tri", yellow, "car") and not truth.may_refer("tri", yellow, "star")
    assert not truth.may_refer("tri", triangle, "car")
    assert truth.may_refer("tri", Expression("9", "unknown", [1]), "car")  # no record: constrains nothing
    assert truth.may_refer("tri", yellow, "elsewhere")
    records = [rec("tri", ["triangle"], [("all the yellow things", [1]), ("the triangle", [1])]),
               rec("car", ["car"], [("the car", [1])]), rec("star", ["star"], [("the star", [1])])]
    # the category rule alone pairs "all the yellow things" with the car video; the truth never does
    for seed in range(5):
        for p in r2_pairing(records, seed, may_refer=truth.may_refer).pairs:
            if p.expression.text == "all the yellow things" and not p.positive:
                assert p.record.video_id == "star"
        for r, e in sample_negatives(records, 2.0, seed=seed, may_refer=truth.may_refer):
            assert not (e.text == "all the yellow things" and r.video_id == "car")
    paired = {(p.record.video_id, p.expression.text) for s in range(10) for p in r2_pairing(records, s).pairs}
    assert ("car", "all the yellow things") in paired  # what the category rule does


def test_load_reads_the_generated_queries(tmp_path):
    root = generate(tmp_path / "s", SynthConfig(frames=8, height=64, width=96, train=2, valid=1, test=1, workers=1))
    truth = SynthTruth.load(root)
    meta = json.loads((root / "meta_expressions" / "train" / "meta_expressions.json").read_text())["videos"]
    vid, v = next(iter(meta.items()))
    assert len(truth.queries) == sum(len(m["expressions"]) for s in ("train", "valid", "test") for m in json.loads(
        (root / "meta_expressions" / s / "meta_expressions.json").read_text())["videos"].values())
    kinds = set()
    for vid, v in meta.items():  # a positive may refer to its own video; an absent one (a noun phrase) may not
        for eid, e in v["expressions"].items():
            kinds.add(e["kind"])
            assert truth.may_refer(vid, Expression(eid, e["exp"], [1]), vid) == (e["kind"] != "absent")
    assert "absent" in kinds and len(kinds) > 2
    assert SynthTruth.load(tmp_path) is None  # not a synthetic benchmark
    assert SynthTruth.load(root, prefix="x/").objects.keys() == {f"x/{k}" for k in truth.objects}
