"""Peak memory when segmenting a long video: it must not grow with the number of frames.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/infer_memory.py [--frames 1000] [--model tiny|lite0] [--head single|multi|objects]

Writes a synthetic mp4 (a bright square moving over noise, 240x427 by default) to a temp folder, segments it
with every writer on (palette PNGs, overlay MP4, RLE JSON) and prints the process's peak RSS (VmHWM) and current
RSS (VmRSS), read from /proc/self/status, after 100, 500 and 1000 frames. `--model tiny` (default) is the tiny
vision/text encoders with random weights: the memory of the pipeline, quickly; `lite0` is EfficientNet-Lite0 +
MiniLM. `--head multi` exercises the two-pass path (per-query logits spilled to disk); `--head objects` the
object-centric video-level path (object masks spilled in pass 1, the referrer over the whole video, then pass 2)."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
import cv2
import numpy as np
import torch

from rvos.data.frames import open_video
from rvos.infer.predictor import FrameSink, Predictor
from rvos.infer.writers import JsonSink, OverlayVideoSink, PaletteSink
from rvos.models import ModelConfig, build_model


def proc_status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MiB
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_video(path: Path, n: int, h: int, w: int) -> None:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (w, h))
    for t in range(n):
        frame = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        x, y = (t * 3) % (w - 40), (t * 2) % (h - 40)
        frame[y: y + 40, x: x + 40] = 230
        writer.write(frame)
    writer.release()


class MemoryProbe(FrameSink):
    """Records RSS after given frame counts (a sink, so it sees frames as they stream)."""

    def __init__(self, marks):
        self.marks, self.rows, self.t0 = set(marks), [], time.perf_counter()

    def write(self, index, frame, masks):
        if index + 1 in self.marks:
            self.rows.append((index + 1, proc_status_mib("VmHWM"), proc_status_mib("VmRSS"), time.perf_counter() - self.t0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", default="240x427", help="HxW of the synthetic video")
    ap.add_argument("--model", choices=("tiny", "lite0"), default="tiny")
    ap.add_argument("--head", choices=("single", "multi", "objects"), default="single")
    ap.add_argument("--window", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    h, w = (int(v) for v in args.size.split("x"))
    vision, text = ("tiny", "tiny") if args.model == "tiny" else ("efficientnet_lite0", "minilm")
    model = build_model(ModelConfig(vision=vision, text=text, head=args.head)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_video(tmp / "long.mp4", args.frames, h, w)
        video = open_video(tmp / "long.mp4")
        marks = [m for m in (100, 500, 1000, args.frames) if m <= args.frames]
        probe = MemoryProbe(marks)
        sinks = [PaletteSink(tmp / "png"), OverlayVideoSink(tmp / "overlay.mp4"), JsonSink(tmp / "masks.json"), probe]
        base = proc_status_mib("VmRSS")
        Predictor(model, window=args.window).segment(video, ["the bright square"], sinks=sinks)
    print(f"{len(video)} frames {h}x{w}, model {vision}+{text}, head {args.head}, window {args.window}, "
          f"writers: PNG + MP4 + JSON; RSS before segmenting {base:.0f} MiB")
    print(f"{'frames':>7} | {'peak RSS MiB':>12} | {'RSS MiB':>8} | {'seconds':>7}")
    for n, hwm, rss, sec in sorted(set(probe.rows)):
        print(f"{n:>7} | {hwm:12.1f} | {rss:8.1f} | {sec:7.1f}")
    first, last = probe.rows[0], probe.rows[-1]
    print(f"peak RSS growth from frame {first[0]} to {last[0]}: {last[1] - first[1]:+.1f} MiB")


if __name__ == "__main__":
    main()
