"""The short end-to-end run: `rvos demo --quick` (generate -> train -> checkpoint -> eval -> segment), then the
same model through `rvos eval --checkpoint`, `rvos segment` with the demo's default checkpoint, and a resumed
training run continuing from the demo's checkpoint."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from rvos.cli import main
from rvos.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    cwd = os.getcwd()
    os.chdir(root)  # the demo's default output folder is ./runs/demo, which `rvos segment` finds by default
    try:
        assert main(["demo", "--quick"]) == 0
    finally:
        os.chdir(cwd)
    return root


def test_demo_writes_every_output(demo_run):
    out = demo_run / "runs" / "demo"
    for rel in ("REPORT.md", "checkpoints/final.pt", "checkpoints/last.pt", "config.yaml", "metrics.jsonl",
                "curves.png", "eval/all-frames/global_results.csv", "eval/r2/results.json"):
        assert (out / rel).is_file(), rel
    ckpt = load_checkpoint(out / "checkpoints" / "final.pt")
    assert ckpt["step"] == 20 and ckpt["config"]["model"]["vision"] == "tiny"  # phase 2, the referrer
    assert ckpt["config"]["method"]["name"] == "objects" and ckpt["config"]["data"]["extra_synth"] == 0
    assert load_checkpoint(out / "objects" / "checkpoints" / "last.pt")["step"] == 20  # phase 1, the object decoder
    report = (out / "REPORT.md").read_text()
    assert "J&F" in report and "R2 protocol" in report
    videos = list((out / "segment").glob("*/overlay.mp4"))
    assert len(videos) == 1
    cap = cv2.VideoCapture(str(videos[0]))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8  # the quick benchmark's videos have 8 frames
    cap.release()
    masks = json.loads((videos[0].parent / "masks.json").read_text())
    assert len(masks["sentences"]) == 2
    pngs = sorted(videos[0].parent.glob("png/*/*.png"))
    assert len(pngs) == 16 and Image.open(pngs[0]).mode == "P"


def test_eval_checkpoint_matches_demo_numbers(demo_run, tmp_path):
    out = demo_run / "runs" / "demo"
    rc = main(["eval", "--checkpoint", str(out / "checkpoints" / "final.pt"), "--dataset", str(out / "data"),
               "--split", "test", "--out", str(tmp_path)])
    assert rc == 0
    demo = (out / "eval" / "all-frames" / "global_results.csv").read_text().splitlines()
    again = (tmp_path / "global_results.csv").read_text().splitlines()
    assert demo == again  # same model, same data, same protocol: identical numbers


def test_segment_uses_the_demo_checkpoint_by_default(demo_run, tmp_path):
    video = next((demo_run / "runs" / "demo" / "segment").glob("*.mp4"))
    cwd = os.getcwd()
    os.chdir(demo_run)
    try:
        assert main(["segment", str(video), "--text", "the red circle", "--out", str(tmp_path), "--no-video"]) == 0
    finally:
        os.chdir(cwd)
    pngs = sorted(tmp_path.glob("png/*/*.png"))
    assert len(pngs) == 8
    assert np.asarray(Image.open(pngs[0])).shape == (96, 160)


def test_resume_continues_from_the_demo_checkpoint(demo_run, tmp_path):
    """The demo's two phases resume: phase 1 (objects/) and the track cache are done, so only the referrer trains on."""
    import shutil

    out = demo_run / "runs" / "demo"
    run = tmp_path / "run"
    for part in ("checkpoints", "objects"):
        shutil.copytree(out / part, run / part)
    shutil.copy(out / "tracks.pt", run / "tracks.pt")
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    phase1 = (run / "objects" / "checkpoints" / "last.pt").read_bytes()
    overrides = [f"{k}={v}" for k, v in (("data.root", out / "data"), ("model.vision", "tiny"), ("model.text", "tiny"),
                                          ("model.vision_pretrained", "false"), ("loop.feature_cache", "off"),
                                          ("data.clip.size", "[96,160]"), ("loop.checkpoint_every", 10),
                                          ("data.val_split", "''"), ("data.extra_synth", 0), ("loop.steps", 20))]
    assert main(["train", "objects_demo", *overrides, "method.params.refer_steps=30", "--out", str(run),
                 "--resume"]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 30 > ckpt["step"]
    assert (run / "objects" / "checkpoints" / "last.pt").read_bytes() == phase1  # phase 1 was not trained again
