"""Time J and F over the DAVIS sample (495 frames, 854x480): rvos's fast path against the straightforward way.

fast path:       open_dataset + PNG predictions + evaluate_predictions(all-frames) + the printed table; cropped
                 J/F (`rvos.evaluate.jf.frame_jf`), cv2 dilation, a thread pool over frames.
straightforward: one frame at a time, no threads: PIL reads, full-image seg2bmap, scipy.ndimage.binary_dilation
                 with the disk (as skimage's binary_dilation), a direct transcription of the official algorithm.
official-like:   the same with cv2.dilate on the full image (what davis2017-evaluation does today).
Every path must give the same numbers; the script checks that before printing times.

    python benchmarks/eval_speed.py [--runs 5] [--baseline-runs 1] [--workers N]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import cv2
import numpy as np
from PIL import Image

from common import DAVIS_SAMPLE, cpu_model

from rvos.data.readers import open_dataset
from rvos.data.readers.common import read_index_png
from rvos.evaluate.jf import bound_pix, disk, f_from_counts
from rvos.evaluate.predictions import open_predictions
from rvos.evaluate.protocols import default_workers, evaluate_predictions
from rvos.evaluate.reference import reference_f, reference_iou, reference_seg2bmap

SAMPLE = DAVIS_SAMPLE


def fast(workers: int) -> dict:
    read_index_png.cache_clear()  # no decoded ground truth carried over from the previous run
    records = open_dataset(SAMPLE)
    result = evaluate_predictions(records, open_predictions(SAMPLE / "osvos_predictions"), "all-frames", workers=workers)
    result.report()
    return {r["Sequence"]: (r["J-Mean"], r["F-Mean"]) for r in result.tables["per-sequence"]}


def _official_like_f(gt: np.ndarray, pred: np.ndarray) -> float:
    kernel = disk(bound_pix(pred.shape))
    fb, gb = reference_seg2bmap(pred), reference_seg2bmap(gt)
    fd, gd = cv2.dilate(fb.astype(np.uint8), kernel), cv2.dilate(gb.astype(np.uint8), kernel)
    return f_from_counts(int(fb.sum()), int(gb.sum()), int(np.sum(fb * gd)), int(np.sum(gb * fd)))


def straightforward(f_fn) -> dict:
    out = {}
    ann = SAMPLE / "DAVIS" / "Annotations" / "480p"
    for seq in sorted(p.name for p in (SAMPLE / "osvos_predictions").iterdir()):
        js, fs = [], []
        for png in sorted((ann / seq).glob("*.png")):
            gt = np.array(Image.open(png)) == 1
            pred = np.array(Image.open(SAMPLE / "osvos_predictions" / seq / png.name)) == 1
            js.append(reference_iou(gt, pred))
            fs.append(f_fn(gt, pred))
        out[seq] = (float(np.mean(js)), float(np.mean(fs)))
    return out


def timed(fn, runs: int) -> tuple[float, float, dict]:
    """(median wall seconds, median CPU seconds of this process, result of the last run)."""
    walls, cpus, res = [], [], None
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        res = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs of the fast path (median reported)")
    ap.add_argument("--baseline-runs", type=int, default=1, help="runs of each slow path (about 1.5 min each)")
    ap.add_argument("--workers", type=int, default=default_workers())
    args = ap.parse_args()
    if not SAMPLE.is_dir():
        print(f"DAVIS sample not found at {SAMPLE} (set RVOS_SHARED_DATA)", file=sys.stderr)
        return 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: nproc={os.cpu_count()}, CPU: {cpu_model()}, load average at start {load:.2f}, "
          f"python {platform.python_version()}, opencv {cv2.__version__}, numpy {np.__version__}")
    fast(args.workers)  # warm-up: imports, file cache
    fw, fc, fres = timed(lambda: fast(args.workers), args.runs)
    ow, oc, ores = timed(lambda: straightforward(_official_like_f), args.baseline_runs)
    sw, sc, sres = timed(lambda: straightforward(reference_f), args.baseline_runs)
    for name, res in (("official-like", ores), ("straightforward", sres)):
        for seq, (j, f) in fres.items():
            assert abs(res[seq][0] - j) < 1e-12 and abs(res[seq][1] - f) < 1e-12, f"{name} differs on {seq}"
    print("DAVIS sample, 6 sequences, 495 frames 854x480, J and F (all frames); identical numbers on every path")
    print(f"{'path':<44}{'runs':>5}{'wall s':>9}{'cpu s':>9}{'speed-up':>10}")
    rows = [(f"fast path ({args.workers} threads)", args.runs, fw, fc),
            ("official-like (cv2.dilate, full frames)", args.baseline_runs, ow, oc),
            ("straightforward (scipy binary_dilation)", args.baseline_runs, sw, sc)]
    for name, runs, w, c in rows:
        print(f"{name:<44}{runs:>5}{w:>9.2f}{c:>9.2f}{w / fw:>9.1f}x")
    print("speed-up = wall time of the path / wall time of the fast path; medians over runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
