"""Writers: every output is read back (PNG palette mode and values, MP4 frame count, JSON RLE = PNG masks, zip)."""
from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from infer_helpers import N, TinyModel, make_video
from rvos.infer.predictor import Predictor
from rvos.infer.render import davis_palette, overlay_masks, render_frame
from rvos.infer.rle import decode_rle, encode_rle
from rvos.infer.writers import JsonSink, OverlayVideoSink, PaletteSink, sentence_dirs, slug, zip_pngs


def test_davis_palette_first_colours():
    p = davis_palette()
    assert len(p) == 768
    assert p[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]


def test_slugs_are_distinct():
    assert slug("The man, on the LEFT!") == "the-man-on-the-left"
    assert sentence_dirs(["a dog", "A dog", "?"]) == ["a-dog", "a-dog-2", "sentence"]


def test_rle_round_trip():
    m = np.zeros((7, 9), bool)
    m[2:5, 3:8] = True
    rle = encode_rle(m)
    assert rle["size"] == [7, 9] and isinstance(rle["counts"], str)
    json.dumps(rle)
    assert (decode_rle(rle) == m).all()


def test_overlay_tints_only_the_mask():
    frame = np.zeros((20, 30, 3), np.uint8)
    m = np.zeros((20, 30), bool)
    m[5:15, 10:20] = True
    out = overlay_masks(frame, [m], alpha=0.5)
    assert tuple(out[10, 15]) == (128, 32, 32)  # half of tint (255, 64, 64) over black
    assert not out[0:3, 0:5].any()  # far from the mask and its outline: untouched
    assert render_frame(frame.copy(), [m], ["a sentence"]).shape == (20, 30, 3)


def test_all_outputs_read_back(tmp_path):
    video = make_video()
    sentences = ["the bright square", "the dark part"]
    sinks = [PaletteSink(tmp_path / "png"), OverlayVideoSink(tmp_path / "overlay.mp4"), JsonSink(tmp_path / "m.json")]
    results = Predictor(TinyModel(), window=4).segment(video, sentences, sinks=sinks)

    doc = json.loads((tmp_path / "m.json").read_text())
    assert (doc["video"], doc["height"], doc["width"]) == ("clip", 45, 61)
    assert [s["sentence"] for s in doc["sentences"]] == sentences
    assert doc["sentences"][0]["spans"] is None and doc["sentences"][0]["present"] is None
    for k, r in enumerate(results):
        assert r.paths["png"] == tmp_path / "png" / sentence_dirs(sentences)[k]
        assert r.paths["video"] == tmp_path / "overlay.mp4" and r.paths["json"] == tmp_path / "m.json"
        frames = doc["sentences"][k]["frames"]
        assert len(frames) == N
        for t, fr in enumerate(frames):
            with Image.open(r.paths["png"] / f"{t:05d}.png") as im:
                assert im.mode == "P" and im.size == (61, 45)
                assert im.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
                png = np.asarray(im)
            assert set(np.unique(png)) <= {0, 1}
            mask = decode_rle(fr["rle"])
            assert (mask == (png == 1)).all()
            assert fr["area"] == int(mask.sum()) == r.areas[t] and fr["score"] == pytest.approx(r.scores[t])
    assert not list(tmp_path.rglob(".*partial*"))  # temp names were renamed

    cap = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count += 1
        assert frame.shape == (46, 62, 3)  # odd sizes padded to even for MPEG-4
    cap.release()
    assert count == N

    z = zip_pngs(tmp_path / "png", tmp_path / "sub.zip")
    with zipfile.ZipFile(z) as zf:
        names = sorted(zf.namelist())
    assert len(names) == 2 * N and names[0] == "Annotations/the-bright-square/00000.png"


def test_overlay_sink_abort_leaves_nothing(tmp_path):
    class Stop(Exception):
        pass

    class Breaking(PaletteSink):
        def write(self, index, frame, masks):
            if index == 2:
                raise Stop
            super().write(index, frame, masks)

    with pytest.raises(Stop):
        Predictor(TinyModel(), window=2).segment(make_video(), ["x"], sinks=[OverlayVideoSink(tmp_path / "o.mp4"),
                                                                            Breaking(tmp_path / "png")])
    assert not (tmp_path / "o.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]


def test_json_records_presence_spans_and_relevance(tmp_path):
    model = TinyModel(queries=2, good_query=1, presence=-3.0, relevance=True)
    Predictor(model, window=4).segment(make_video(), ["bright"], sinks=[JsonSink(tmp_path / "m.json"),
                                                                       PaletteSink(tmp_path / "png")])
    (s,) = json.loads((tmp_path / "m.json").read_text())["sentences"]
    assert (s["query"], s["present"], s["gated"], s["spans"]) == (1, False, True, [[3, 6]])
    assert all(f["area"] == 0 and not decode_rle(f["rle"]).any() for f in s["frames"])
    assert [f["relevance"] > 0.5 for f in s["frames"]] == [False, False, False, True, True, True]
    for t in range(N):
        with Image.open(tmp_path / "png" / "bright" / f"{t:05d}.png") as im:
            assert not np.asarray(im).any()
