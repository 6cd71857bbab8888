"""`rvos data synth OUT --seed S [...]`: write the synthetic RVOS benchmark and print its counts."""
from __future__ import annotations

import argparse
import json
import time

from rvos.data.synth.config import SynthConfig


def add_args(parser: argparse.ArgumentParser) -> None:
    d = SynthConfig()
    parser.add_argument("out", help="output folder (must not exist or be empty, unless --overwrite)")
    parser.add_argument("--seed", type=int, default=d.seed, help="same seed, same bytes (default %(default)s)")
    for split in ("train", "valid", "test"):
        parser.add_argument(f"--{split}", type=int, default=getattr(d, split), help=f"{split} videos (default %(default)s)")
    parser.add_argument("--frames", type=int, default=d.frames, help="frames per video (default %(default)s)")
    parser.add_argument("--height", type=int, default=d.height, help="frame height (default %(default)s)")
    parser.add_argument("--width", type=int, default=d.width, help="frame width (default %(default)s)")
    parser.add_argument("--fps", type=int, default=d.fps, help="frame rate written to the metadata (default %(default)s)")
    parser.add_argument("--workers", type=int, default=d.workers, help="generator processes (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")


def run(args: argparse.Namespace) -> int:
    from rvos.data.synth.writer import generate

    cfg = SynthConfig(seed=args.seed, train=args.train, valid=args.valid, test=args.test, frames=args.frames,
                      height=args.height, width=args.width, fps=args.fps, workers=args.workers)
    start = time.perf_counter()
    out = generate(args.out, cfg, overwrite=args.overwrite)
    took = time.perf_counter() - start
    counts = json.loads((out / "synth.json").read_text())["counts"]
    for key in ("videos", "objects", "expressions"):
        parts = ", ".join(f"{k} {v}" for k, v in counts[key].items())
        print(f"{key:<12} {sum(counts[key].values()):>5}  ({parts})")
    print(f"wrote {out} in {took:.1f} s")
    return 0
