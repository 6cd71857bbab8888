"""The processing behind the web page (no gradio needed): outputs of a request, progress, clear errors."""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos.app.service import DemoService, parse_sentences
from rvos.errors import ConfigError, DatasetError


def test_parse_sentences():
    assert parse_sentences("the red car\n\n  the  dog on the left \n") == ["the red car", "the dog on the left"]
    for empty in (None, "", "  \n \n"):
        with pytest.raises(ConfigError, match="at least one referring sentence"):
            parse_sentences(empty)


def test_run_writes_overlay_json_and_png_zip(tmp_path, tiny_model, small_webm):
    service = DemoService(tiny_model, window=4, workdir=tmp_path)
    calls = []
    out = service.run(str(small_webm), "the bright square\nthe background", progress=lambda *a: calls.append(a))
    assert out.frames == 6 and out.folder.parent == tmp_path / "runs"
    with open(out.overlay, "rb") as f:
        assert f.read(4) == b"\x1a\x45\xdf\xa3"  # EBML magic: a WebM
    doc = json.loads(out.json.read_text())
    assert [s["sentence"] for s in doc["sentences"]] == ["the bright square", "the background"]
    assert all(len(s["frames"]) == 6 for s in doc["sentences"])
    with zipfile.ZipFile(out.zip) as zf:
        names = sorted(zf.namelist())
        assert names == sorted(f"masks/{d}/{i:05d}.png" for d in ("the-bright-square", "the-background") for i in range(6))
        with zf.open(names[0]) as f, Image.open(f) as im:
            assert im.mode == "P" and im.size == (64, 48)
    assert not (out.folder / "png").exists()  # only the zip stays
    # one row per sentence: frames with the object = frames whose JSON area is non-zero
    for row, s in zip(out.rows, doc["sentences"]):
        assert row[0] == s["sentence"]
        assert row[1] == f"{sum(f['area'] > 0 for f in s['frames'])}/6"
        assert row[2] == "no presence head"  # the tiny model has none
    # progress: every frame of the single pass, in order, against the right total
    assert [c[0] for c in calls] == list(range(6)) and {c[1] for c in calls} == {6}
    assert {c[2] for c in calls} == {"segmenting"}
    assert "Segmented 6 frames with 2 sentences" in out.message


def test_a_long_video_is_processed_in_windows(tmp_path, tiny_model):
    """As `rvos segment` does: frames are read and encoded `window` at a time, each window before the next is
    read, so memory does not grow with the video's length; `--window` reaches the predictor."""
    from rvos.app.samples import write_webm

    n, window = 30, 4
    frames = np.full((n, 48, 64, 3), 30, np.uint8)
    for t in range(n):
        frames[t, 12:28, 2 * t: 2 * t + 16] = 230
    video = write_webm(frames, tmp_path / "long.webm", fps=10)
    service = DemoService(tiny_model, window=window, workdir=tmp_path)
    events = []
    encode = service.predictor.encode

    def logged_encode(x):  # x: [T, 3, H, W], the frames of one window
        events.append(("encode", x.shape[0]))
        return encode(x)

    service.predictor.encode = logged_encode
    out = service.run(video, "the square", progress=lambda done, total, what: events.append(("read", done)))
    expected = []
    for start in range(0, n, window):
        idx = list(range(start, min(n, start + window)))
        expected += [("read", i) for i in idx] + [("encode", len(idx))]
    assert events == expected  # 8 windows: 7 of 4 frames, then 2
    assert out.frames == n and len(json.loads(out.json.read_text())["sentences"][0]["frames"]) == n


def test_progress_reports_the_second_pass(tmp_path, small_webm):
    """A model with a presence head is gated: a second pass reads the frames again to write the overlay."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infer"))
    from infer_helpers import TinyModel  # the inference tests' stand-in model, with a presence logit

    calls = []
    service = DemoService(TinyModel(presence=3.0), window=4, workdir=tmp_path)
    out = service.run(small_webm, "the square", progress=lambda *a: calls.append(a))
    assert [c[2] for c in calls] == ["segmenting"] * 6 + ["writing the overlay and the masks"] * 6
    assert out.rows[0][2] == "yes" and out.rows[0][3] == "0.95"


def test_bad_uploads_say_what_is_wrong(tmp_path, tiny_model, small_webm):
    service = DemoService(tiny_model, workdir=tmp_path, max_frames=5)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    image = tmp_path / "still.png"
    Image.new("RGB", (8, 8)).save(image)
    cases = [(None, "upload a video first"), (str(text), "'notes.txt' is a .txt file, not a video"),
             (fake, "'fake.mp4' cannot be read as a video"), (image, "'still.png' is an image, not a video"),
             (small_webm, "'square.webm' has 6 frames; this demo takes at most 5")]
    for path, message in cases:
        with pytest.raises(DatasetError) as e:
            service.run(path, "the square")
        assert message in str(e.value)
        assert str(tmp_path) not in str(e.value)  # the upload's temporary folder means nothing to the user
    with pytest.raises(ConfigError, match="at least one referring sentence"):
        service.run(small_webm, " \n ")
    assert list((tmp_path / "runs").iterdir()) == []  # nothing was left behind


def test_old_results_are_pruned(tmp_path, tiny_model, small_webm):
    service = DemoService(tiny_model, workdir=tmp_path, keep_runs=2)
    outs = [service.run(small_webm, "the square") for _ in range(3)]
    assert sorted((tmp_path / "runs").iterdir()) == sorted(o.folder for o in outs[1:])
