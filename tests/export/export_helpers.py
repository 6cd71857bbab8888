"""Helpers of the ONNX tests: DAVIS-sample clips, a threshold that makes random-weight masks non-trivial, and the
per-frame IoU of two runs' RLE masks."""
from __future__ import annotations

import math

import numpy as np
import torch
from pycocotools import mask as mask_utils

from rvos.data.frames import ArrayFrames
from rvos.data.types import Video
from rvos.infer.geometry import Geometry


def davis_clips(root, frames: int) -> list[tuple[Video, str]]:
    """(the first `frames` frames of each DAVIS-sample video, its Ref-DAVIS sentence)."""
    from rvos.data.readers import open_dataset

    out = []
    for r in open_dataset(root):
        v = r.video
        clip = Video(v.video_id, ArrayFrames([v.frame(i) for i in range(frames)]), v.height, v.width, v.fps)
        out.append((clip, r.expressions[0].text))
    return out


@torch.no_grad()
def balanced_threshold(model, video: Video, sentence: str, size=None, frames: int = 2) -> float:
    """The probability threshold at which about half of the first frames' pixels are foreground for the query
    with the highest score: with random head weights the default 0.5 often gives empty masks, and a parity test
    on empty masks would test nothing. The boundary then runs where the logits are closest to the threshold."""
    geo = Geometry.create(video.height, video.width, size)
    frames = min(frames, len(video))
    x = geo.to_input([video.frame(i) for i in range(frames)])
    out = model(x[None], [sentence])  # [1, T, ...]
    q = int(out.scores[0].sum(0).argmax())
    med = float(out.mask_logits[0, :, q].median())
    return min(max(1.0 / (1.0 + math.exp(-med)), 1e-4), 1 - 1e-4)


def ious(rles_a: list[dict], rles_b: list[dict]) -> list[float]:
    """Per-frame IoU of two lists of COCO RLEs (1.0 where both masks are empty)."""
    out = []
    for a, b in zip(rles_a, rles_b, strict=True):
        a = {"size": a["size"], "counts": a["counts"].encode() if isinstance(a["counts"], str) else a["counts"]}
        b = {"size": b["size"], "counts": b["counts"].encode() if isinstance(b["counts"], str) else b["counts"]}
        union = mask_utils.area(mask_utils.merge([a, b], intersect=False))
        out.append(1.0 if union == 0 else float(mask_utils.iou([a], [b], [0])[0][0]))
    return out


def foreground(rles: list[dict]) -> float:
    """Mean foreground fraction of RLE masks."""
    return float(np.mean([mask_utils.area({"size": r["size"], "counts": r["counts"].encode()}) / (r["size"][0] * r["size"][1])
                          for r in rles]))


def segment_both_runtimes(checkpoint, exported, model, video: Video, sentence: str, tmp_path) -> tuple[dict, dict]:
    """`rvos segment` on the video's frames (saved as PNGs) with the torch checkpoint and with its ONNX export, at
    size 96, window 4 and a balanced threshold, gate off -> the masks.json sentence entries (torch, onnx)."""
    import json

    from PIL import Image

    from rvos.cli import main

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(len(video)):
        Image.fromarray(video.frame(i)).save(frames / f"{i:05d}.png")
    thr = balanced_threshold(model, video, sentence, size=96)
    common = ["segment", str(frames), "--text", sentence, "--size", "96", "--window", "4", "--threshold", str(thr),
              "--no-video", "--no-png", "--no-gate"]
    assert main(common + ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "torch")]) == 0
    assert main(common + ["--runtime", "onnx", "--checkpoint", str(exported), "--out", str(tmp_path / "onnx")]) == 0
    a, b = (json.loads((tmp_path / k / "masks.json").read_text())["sentences"][0] for k in ("torch", "onnx"))
    return a, b
