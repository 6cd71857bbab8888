"""predict_records: per-(video, expression, frame) masks for the evaluator, as PNGs on disk or RLE in memory."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from infer_helpers import N, TinyModel, expected_mask, make_video
from rvos.data.types import Expression, VideoRecord
from rvos.infer.predictor import Predictor
from rvos.infer.records import PngPredictions, RlePredictions, predict_records


def records():
    exps = [Expression("0", "the bright square", [1]), Expression("1", "the dark ground", [2]),
            Expression("2", "a cat", [])]
    a = VideoRecord(make_video(), {}, exps, split="valid")
    b = VideoRecord(make_video(n=3), {}, exps[:1], split="train")
    b.video.video_id = "other"
    return [a, b]


def test_png_and_rle_predictions_agree(tmp_path):
    recs = records()
    model = TinyModel()
    on_disk = predict_records(model, recs, out=tmp_path / "pred", window=4)
    in_mem = predict_records(Predictor(model, window=2), recs)
    assert isinstance(on_disk, PngPredictions) and isinstance(in_mem, RlePredictions)
    assert set(on_disk) == set(in_mem) and len(on_disk) == 3 * N + 3
    for key in on_disk:
        assert (on_disk[key] == in_mem[key]).all()
    assert (tmp_path / "pred" / "clip" / "1" / "00005.png").is_file()
    assert (tmp_path / "pred" / "other" / "0" / "00002.png").is_file()
    m = in_mem[("clip", "0", 2)]
    assert (m & expected_mask(2)).sum() / (m | expected_mask(2)).sum() > 0.6
    assert not (in_mem[("clip", "1", 2)] & m).any()
    assert in_mem.scores[("clip", "0")] == pytest.approx(np.mean(
        Predictor(model).segment(recs[0].video, ["the bright square"])[0].scores))
    assert in_mem.presence == {} and in_mem.spans == {}
    with_spans = predict_records(TinyModel(relevance=True), recs[:1])
    assert with_spans.spans[("clip", "0")] == [(3, 6)]


def test_split_filter_and_presence():
    preds = predict_records(TinyModel(presence=-2.0), records(), split="valid",
                            expressions=lambda r, e: e.exp_id != "2")
    assert {k[:2] for k in preds} == {("clip", "0"), ("clip", "1")}
    assert preds.presence == {("clip", "0"): False, ("clip", "1"): False}
    assert not any(preds[k].any() for k in preds)


def test_evaluator_accepts_them():
    ev = pytest.importorskip("rvos.evaluate.predictions")
    preds = predict_records(TinyModel(), records()[:1])
    mem = ev.MemoryPredictions(preds, scores=preds.scores, presence=preds.presence)
    rec = records()[0]
    assert mem.score("clip", "0") == preds.scores[("clip", "0")]
    unit = SimpleNamespace(key="0", obj_ids=[1])
    assert (mem.mask(rec.video, unit, 1) == preds[("clip", "0", 1)]).all()
