"""`rvos segment` end to end on a tiny GIF and mp4 with a tiny real checkpoint; clear errors for bad input."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from infer_helpers import N, make_frames
from rvos.cli import main
from rvos.infer import command


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    """A tiny model saved in the trainer's checkpoint format (what `rvos demo` writes). (tests/conftest.py)"""
    return tiny_checkpoint


@pytest.fixture(scope="module")
def gif(tmp_path_factory):
    path = tmp_path_factory.mktemp("vid") / "tiny.gif"
    ims = [Image.fromarray(f) for f in make_frames()]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=100, loop=0)
    return path


def test_segment_gif_end_to_end(tmp_path, checkpoint, gif, capsys):
    out = tmp_path / "out"
    rc = main(["segment", str(gif), "--text", "the bright square", "--text", "the background",
               "--checkpoint", str(checkpoint), "--out", str(out), "--window", "4", "--zip"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out / "overlay.mp4") in printed and str(out / "masks.json") in printed
    doc = json.loads((out / "masks.json").read_text())
    assert [s["sentence"] for s in doc["sentences"]] == ["the bright square", "the background"]
    assert all(len(s["frames"]) == N for s in doc["sentences"])
    pngs = sorted((out / "png" / "the-bright-square").glob("*.png"))
    assert len(pngs) == N
    with Image.open(pngs[0]) as im:
        assert im.mode == "P" and im.size == (61, 45)
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N
    cap.release()
    assert (out / "masks.zip").is_file()


def test_segment_mp4_without_video(tmp_path, checkpoint):
    path = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for f in make_frames(n=5, h=48, w=64):
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    out = tmp_path / "o"
    assert main(["segment", str(path), "--text", "square", "--checkpoint", str(checkpoint), "--out", str(out),
                 "--no-video", "--size", "32"]) == 0
    assert not (out / "overlay.mp4").exists()
    doc = json.loads((out / "masks.json").read_text())
    assert (doc["height"], doc["width"]) == (48, 64) and len(doc["sentences"][0]["frames"]) == 5
    assert len(list((out / "png" / "square").glob("*.png"))) == 5


def test_clear_errors(tmp_path, checkpoint, gif, capsys, monkeypatch):
    assert main(["segment", str(tmp_path / "nope.mp4"), "--text", "x", "--checkpoint", str(checkpoint)]) == 2
    assert "nope.mp4" in capsys.readouterr().err
    assert main(["segment", str(gif), "--text", "  ", "--checkpoint", str(checkpoint)]) == 2
    assert "empty" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RVOS_HOME", raising=False)
    assert main(["segment", str(gif), "--text", "x"]) == 2
    err = capsys.readouterr().err
    assert "make demo" in err and "--checkpoint" in err
    assert main(["segment", str(gif), "--text", "x", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_default_checkpoint_locations(tmp_path, monkeypatch, checkpoint):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    (home / "demo" / "checkpoints").mkdir(parents=True)
    (home / "demo" / "checkpoints" / "final.pt").write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv("RVOS_HOME", str(home))
    assert command.default_checkpoint() == home / "demo" / "checkpoints" / "final.pt"
    local = tmp_path / command.DEFAULT_CHECKPOINT
    local.parent.mkdir(parents=True)
    local.write_bytes(b"x")
    assert command.default_checkpoint() == command.DEFAULT_CHECKPOINT
