"""Training throughput on this CPU, in clips per second, with and without the feature cache, for the default
config (`simrvos_synth`: frozen EfficientNet-Lite0 + frozen MiniLM, T=5 frames, 192x320, batch 4).

A small synthetic benchmark (8 train videos of 24 frames) is generated in a temporary folder. Each mode trains
`--warmup` + `--steps` steps through `Trainer.fit` (data loading, forward, backward, optimizer; no checkpoints or
logs); a step's time is the wall time between the ends of consecutive steps, and the median over the timed steps
gives clips/s = batch / median. Without the cache, the frozen backbone runs on every clip and the clips get the
config's full augmentation; with it, the backbone ran once beforehand (its one-off cost is printed in frames/s:
every frame plain and flipped).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_throughput.py [--steps 20] [--warmup 3] [key=value ...]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_throughput.py --smoke     # seconds: tiny model and data"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
from common import command_line, machine_line, markdown_table
from rvos.data.synth import SynthConfig, generate
from rvos.train.config import load_config
from rvos.train.feature_cache import build_feature_cache
from rvos.models import build_model
from rvos.train.loop import Trainer, load_records, seed_all

TINY = ["model.vision=tiny", "model.vision_pretrained=false", "model.text=tiny", "model.dim=16", "model.num_heads=2",
        "model.fpn_dims=[16,16,8]", "model.mask_dim=8", "model.dyn_hidden=8", "data.clip.num_frames=2",
        "data.clip.size=[32,48]", "loop.batch_size=2"]


class StepTimer:
    """Hook: wall time between the ends of consecutive steps (one whole iteration: data + step)."""

    def __init__(self):
        self.ends: list[float] = []

    def after_step(self, t, parts: dict, batch) -> None:
        self.ends.append(time.perf_counter())

    def at_end(self, t) -> None:
        pass

    def times(self, warmup: int) -> list[float]:
        """Durations of the steps after the first `warmup` ones."""
        ends = self.ends[warmup - 1:]  # from the end of the last warm-up step
        return [b - a for a, b in zip(ends, ends[1:])]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="training config overrides key=value (e.g. loop.batch_size=8)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    ap.add_argument("--videos", type=int, default=8, help="synthetic train videos")
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny model, 2 tiny videos, 3 timed steps")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.videos = 3, 1, 2
        args.overrides = TINY + list(args.overrides)
    if args.steps < 1 or args.warmup < 1:
        ap.error("--steps and --warmup must be >= 1")
    return args


def run_mode(cfg, out: Path, records, features, steps: int, warmup: int) -> list[float]:
    timer = StepTimer()
    trainer = Trainer(cfg, out, records=records, features=features, hooks=[timer])
    trainer.fit()
    return timer.times(warmup)


def main(argv=None) -> int:
    args = parse_args(argv)
    print(command_line())
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as tmp:
        tmp = Path(tmp)
        small = dict(height=64, width=96, frames=8) if args.smoke else {}
        t0 = time.perf_counter()
        root = generate(tmp / "synth", SynthConfig(seed=0, train=args.videos, valid=0, test=0, workers=1, **small))
        gen_s = time.perf_counter() - t0
        base = [f"data.root={root}", f"loop.steps={args.warmup + args.steps}", "loop.device=cpu",
                "loop.checkpoint_every=0", "loop.eval_every=0", "loop.log_every=0", "loop.progress=false",
                "loop.plot=false", *args.overrides]
        cfg_off = load_config("simrvos_synth", base + ["loop.feature_cache=off"])
        cfg_on = load_config("simrvos_synth", base + ["loop.feature_cache=memory"])
        records = load_records(cfg_on, "train")
        frames = sum(len(r.video) for r in records)
        c = cfg_on.data.clip
        print(f"data: {len(records)} synthetic videos, {frames} frames, {sum(len(r.expressions) for r in records)} "
              f"expressions (generated in {gen_s:.1f} s); model {cfg_on.model.vision} + {cfg_on.model.text}, "
              f"T={c.num_frames}, {c.size[0]}x{c.size[1]}, batch {cfg_on.loop.batch_size}; "
              f"median of {args.steps} steps after {args.warmup} warm-up steps")

        off = run_mode(cfg_off, tmp / "off", records, None, args.steps, args.warmup)
        seed_all(cfg_on.loop.seed)
        encoder = build_model(cfg_on.model)
        t0 = time.perf_counter()
        cache = build_feature_cache(encoder, records, tuple(c.size), "cpu")
        cache_s = time.perf_counter() - t0
        del encoder
        on = run_mode(cfg_on, tmp / "on", records, cache, args.steps, args.warmup)

    batch = cfg_on.loop.batch_size
    m_off, m_on = statistics.median(off), statistics.median(on)
    saved = m_off - m_on  # seconds saved per step by the cache
    pays = f"after {cache_s / saved:.0f} steps" if saved > 0 else "never (no step-time saving)"
    print(f"feature cache build: {len(cache)} frames (plain + flipped) in {cache_s:.1f} s = "
          f"{len(cache) / max(cache_s, 1e-9):.1f} frames/s (one-off); it pays for itself {pays}")
    print(f"speed-up with the cache: {m_off / m_on:.2f}x")
    rows = [("no cache (backbone every step, full augmentation)", f"{m_off:.3f}", f"{batch / m_off:.2f}", "1.00x"),
            ("feature cache (frozen backbone run once)", f"{m_on:.3f}", f"{batch / m_on:.2f}", f"{m_off / m_on:.2f}x"),
            (f"cache build, one-off ({len(cache)} frames)", f"{cache_s:.1f} total", f"{len(cache) / max(cache_s, 1e-9):.1f} frames/s", "")]
    print(markdown_table(["mode", "median step s", "clips/s", "speed-up"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
