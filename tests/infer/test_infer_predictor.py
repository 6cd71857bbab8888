"""Predictor: masks land where the stand-in model puts them, windows do not change results, sentences share the
visual pass, the multi-query head is chosen over the whole video, gating empties absent objects."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from infer_helpers import N, TinyModel, close_to, expected_mask, make_video
from rvos.errors import ConfigError, DatasetError
from rvos.infer.geometry import Geometry
from rvos.infer.predictor import FrameSink, Predictor
from rvos.infer.rle import decode_rle


class Collect(FrameSink):
    def __init__(self):
        self.frames, self.masks, self.closed = [], [], False

    def write(self, index, frame, masks):
        self.frames.append(index)
        self.masks.append([m.copy() for m in masks])

    def close(self, results):
        self.closed = True


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_masks_match_the_square_at_original_size(video):
    sink = Collect()
    res = Predictor(TinyModel(), window=4).segment(video, ["the bright square"], sinks=[sink])
    assert sink.frames == list(range(N)) and sink.closed
    for t, masks in enumerate(sink.masks):
        assert masks[0].shape == (45, 61) and masks[0].dtype == bool
        assert close_to(masks[0], t) and iou(masks[0], expected_mask(t)) > 0.6
    assert res[0].areas == [int(m[0].sum()) for m in sink.masks]
    assert res[0].present is None and res[0].query == 0


def test_resized_input_is_mapped_back(video):
    sink = Collect()
    Predictor(TinyModel(), window=3, size=90).segment(video, ["square"], sinks=[sink])  # model sees 90x122
    for t, masks in enumerate(sink.masks):
        assert masks[0].shape == (45, 61)
        assert close_to(masks[0], t) and iou(masks[0], expected_mask(t)) > 0.6


def test_geometry_sizes():
    g = Geometry.create(480, 854, size=360)
    assert (g.model_h, g.model_w, g.pad_h, g.pad_w) == (360, 640, 384, 640)
    assert Geometry.create(45, 61).pad_h == 64


def test_to_input_planes_scale_and_zero_padding():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10  # [H=2, W=3, RGB]
    g = Geometry.create(2, 3, pad_to=4)
    x = g.to_input([frame, frame[::-1]])  # a non-contiguous view too
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    assert x[0, 1, 0, 2].item() == pytest.approx(frame[0, 2, 1] / 255.0)  # channel planes in RGB order
    np.testing.assert_allclose(x[0, :, :2, :3].numpy(), frame.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(x[1, :, :2, :3].numpy(), frame[::-1].transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert x[:, :, 2:].abs().sum() == 0 and x[:, :, :, 3:].abs().sum() == 0  # padding is zero, not stale memory
    up = Geometry.create(2, 3, size=4, pad_to=8).to_input([frame])  # resized to 4x6, padded to 8x8
    assert up.shape == (1, 3, 8, 8) and up[0, :, 4:].abs().sum() == 0 and up[0, :, :, 6:].abs().sum() == 0
    want = cv2.resize(frame, (6, 4), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(up[0, :, :4, :6].numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("queries", [1, 2])
def test_windowed_equals_all_at_once(video, queries):
    runs = []
    for window in (2, 4, N):
        p = Predictor(TinyModel(queries=queries, good_query=queries - 1), window=window, keep_rle=True)
        runs.append(p.segment(video, ["bright", "dark thing"]))
    for r in runs[1:]:
        for a, b in zip(runs[0], r):
            assert a.rles == b.rles and a.areas == b.areas and a.query == b.query
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_sentences_share_one_visual_pass(video):
    model = TinyModel()
    Predictor(model, window=4).segment(video, ["bright", "dark thing", "another"])
    assert model.encode_calls == N  # one frame per call on CPU, each frame once
    assert model.text_calls == 3  # the text once per sentence
    model = TinyModel()
    Predictor(model, window=3, encode_batch=3).segment(video, ["bright", "dark"])
    assert model.encode_calls == 2 and model.decode_calls == 4
    assert video.source.reads == 2 * N  # single-query, no gating: frames read once per segment() call


def test_dark_sentence_gets_the_complement(video):
    res = Predictor(TinyModel(), keep_rle=True).segment(video, ["bright", "the dark part"])
    for t in range(N):
        a, b = decode_rle(res[0].rles[t]), decode_rle(res[1].rles[t])
        assert not (a & b).any()
        assert (a | b).mean() > 0.95


def test_multi_query_uses_the_score_summed_over_the_video(video):
    # Query 0's score beats query 1's (constant logit 1.0) in the last frames, but query 1 wins summed over
    # the video; only query 1 has a mask. A per-frame argmax would give empty masks in those frames.
    model = TinyModel(queries=2, good_query=1)
    sink = Collect()
    (res,) = Predictor(model, window=2).segment(video, ["bright"], sinks=[sink])
    assert res.query == 1
    assert res.scores == pytest.approx([1 / (1 + math.exp(-1.0))] * N)
    assert all(a > 0 for a in res.areas)
    for t, masks in enumerate(sink.masks):
        assert close_to(masks[0], t) and iou(masks[0], expected_mask(t)) > 0.6
    assert video.source.reads == N  # no sink needs frames: the second pass reads none


def test_gating_empties_masks_when_presence_is_low(video):
    (absent,) = Predictor(TinyModel(presence=-3.0), window=4).segment(video, ["bright"])
    assert absent.present is False and absent.gated and absent.areas == [0] * N
    assert absent.presence_score == pytest.approx(1 / (1 + math.exp(3.0)))
    (present,) = Predictor(TinyModel(presence=3.0), window=4).segment(video, ["bright"])
    assert present.present is True and not present.gated and min(present.areas) > 0
    (ungated,) = Predictor(TinyModel(presence=-3.0), window=4, gate=False).segment(video, ["bright"])
    assert ungated.present is False and not ungated.gated and min(ungated.areas) > 0
    assert ungated.areas == present.areas


def test_presence_threshold_moves_the_decision(video):
    # sigmoid(0.5) = 0.622: present at the default 0.5, absent (and emptied) at 0.7
    (kept,) = Predictor(TinyModel(presence=0.5), window=4).segment(video, ["bright"])
    assert kept.present is True and min(kept.areas) > 0
    (emptied,) = Predictor(TinyModel(presence=0.5), window=4, presence_threshold=0.7).segment(video, ["bright"])
    assert emptied.present is False and emptied.gated and emptied.areas == [0] * N
    assert emptied.presence_score == pytest.approx(1 / (1 + math.exp(-0.5)))
    with pytest.raises(ConfigError, match="presence threshold"):
        Predictor(TinyModel(), presence_threshold=1.0)


def test_threshold_changes_the_area(video):
    lo = Predictor(TinyModel(), threshold=0.1).segment(video, ["bright"])[0].areas
    hi = Predictor(TinyModel(), threshold=0.9).segment(video, ["bright"])[0].areas
    assert all(a >= b for a, b in zip(lo, hi)) and sum(lo) > sum(hi)


def test_bad_input(video):
    p = Predictor(TinyModel())
    with pytest.raises(ConfigError, match="empty"):
        p.segment(video, ["ok", "  "])
    with pytest.raises(ConfigError, match="no sentence"):
        p.segment(video, [])
    with pytest.raises(DatasetError, match="no frames"):
        p.segment(make_video(n=0), ["x"])
    with pytest.raises(ConfigError):
        Predictor(TinyModel(), window=0)


def test_sink_abort_on_error(video):
    class Boom(Collect):
        aborted = False

        def write(self, index, frame, masks):
            if index == 3:
                raise RuntimeError("disk full")

        def abort(self):
            self.aborted = True

    sink = Boom()
    with pytest.raises(RuntimeError):
        Predictor(TinyModel(), window=2).segment(video, ["x"], sinks=[sink])
    assert sink.aborted


def test_relevance_gives_spans(video):
    (res,) = Predictor(TinyModel(relevance=True), window=4).segment(video, ["bright"])
    assert len(res.relevance) == N
    assert res.spans == [(3, 6)]
    (plain,) = Predictor(TinyModel(), window=4).segment(video, ["bright"])
    assert plain.relevance is None and plain.spans is None
