"""Inference speed on CPU: frames per second end to end (read, resize, encode, decode, upsample, threshold) and
of the backbone alone, at 480x854 and 360x640; one frame per encode call vs batches of 5.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/infer_speed.py [--frames 10] [--runs 5] [--vision efficientnet_lite0]
        [--head single|multi|objects]

Default model: EfficientNet-Lite0 + MiniLM (pretrained weights when installed; --random for random weights), one
sentence. Median of `--runs` runs of `--frames` frames, after one warm-up run; the modes are timed in interleaved rounds. Target: end to end >= 70% of the
backbone-only speed."""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
import numpy as np
import torch

from rvos.data.frames import ArrayFrames
from rvos.data.types import Video
from rvos.infer.geometry import Geometry
from rvos.infer.predictor import Predictor
from rvos.models import ModelConfig, build_model


def random_frames(n: int, h: int, w: int, seed: int = 0) -> ArrayFrames:
    """Frames already in memory, so the numbers measure the model path, not a video decoder."""
    rng = np.random.default_rng(seed)
    return ArrayFrames([rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)])


def interleaved_medians(fns: dict, runs: int) -> dict:
    """Median wall time of each function, timed in rounds (every function once a round, in rotating order) so
    that drift of a shared virtual CPU hits every mode alike instead of whichever was measured last."""
    for fn in fns.values():
        fn()  # warm-up
    names, times = list(fns), {name: [] for name in fns}
    for r in range(runs):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--vision", default="efficientnet_lite0")
    ap.add_argument("--text", default="minilm")
    ap.add_argument("--random", action="store_true", help="random weights instead of the pretrained ones")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sizes", default="480x854,360x640")
    ap.add_argument("--head", default="single", choices=("single", "multi", "objects"),
                    help="objects: the object-centric model (objects per frame, online tracks, the referrer once per "
                         "sentence, masks in a second pass)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(vision=args.vision, text=args.text, vision_pretrained=not args.random,
                                    head=args.head)).eval()
    n = args.frames
    print(f"model {args.vision} + {args.text}, head {args.head} ({'random' if args.random else 'pretrained'} weights), "
          f"{torch.get_num_threads()} threads, median of {args.runs} runs of {n} frames")
    print(f"{'input':>9} | {'mode':<32} | {'ms/frame':>8} | {'FPS':>6}")
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        video = Video("bench", random_frames(n, h, w), h, w, 24.0)
        geo = Geometry.create(h, w)
        x = geo.to_input([video.frame(i) for i in range(n)])  # [n, 3, H', W'] already padded

        def backbone(batch: int):
            def fn():
                with torch.inference_mode():
                    for chunk in x.split(batch):
                        model.encode_frames(chunk)
            return fn

        def end_to_end(batch: int):
            p = Predictor(model, window=8, encode_batch=batch)
            return lambda: p.segment(video, ["the person riding a bike on the left"])

        fns = {"backbone, 1 frame a call": backbone(1), "backbone, 5 frames a call": backbone(5),
               "end to end, 1 frame a call": end_to_end(1), "end to end, 5 frames a call": end_to_end(5)}
        rows = {name: t / n for name, t in interleaved_medians(fns, args.runs).items()}
        for name, t in rows.items():
            print(f"{size:>9} | {name:<32} | {t * 1000:8.1f} | {1 / t:6.2f}", flush=True)
        ratio = rows["backbone, 1 frame a call"] / rows["end to end, 1 frame a call"]
        batching = rows["end to end, 1 frame a call"] / rows["end to end, 5 frames a call"]
        print(f"{size:>9} | end-to-end / backbone speed: {ratio:.0%} (target >= 70%); "
              f"batch of 5 vs 1 frame, end to end: {batching:.2f}x speed")


if __name__ == "__main__":
    main()
