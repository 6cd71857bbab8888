"""SimRVOS on real data: leave-one-sequence-out cross-validation over the DAVIS sample (6 sequences, one object and
one real Ref-DAVIS17 sentence each, 854x480), scored with the Ref-DAVIS protocol (all-frames, every frame).

Each fold trains on 5 sequences and segments the held-out one. The frozen EfficientNet-Lite0 backbone encodes every
frame (and its flip) once, into one feature cache shared by all folds; each fold then trains only the rest of the
model on it (a fresh model per fold, same seed). Training clips are T random frames of a video (`random`
sampling); the training videos are repeated `--batch` times per epoch so that every batch holds distinct clips.
With `--with-synth`, they are repeated as often as needed to make up about half of the training items (a
synthetic video has a dozen expressions, a DAVIS one a single sentence).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/davis_crossval.py [--steps 200] [--size 240 427] [--lr 1e-3]
        [--with-synth data/synth] [--out runs/davis_cv] [key=value config overrides ...]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/davis_crossval.py --smoke     # seconds: tiny model, 2 folds

With `--out`, the cache is kept on disk in OUT/features (reused by the next run with the same size and videos) and
every fold writes OUT/<sequence>/{config.yaml, metrics.jsonl, curves.png}."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
from common import DAVIS_SAMPLE, command_line, machine_line, markdown_table
from rvos.data.readers import open_dataset
from rvos.data.types import FrameSource, ObjectTrack, Video, VideoRecord
from rvos.infer.model_eval import evaluate_model
from rvos.models import build_model
from rvos.train.config import load_config
from rvos.train.feature_cache import build_feature_cache
from rvos.train.hooks import LogHook
from rvos.train.loop import Trainer, seed_all

# A random-weight model small enough for seconds-long smoke runs (as configs/tiny_test.yaml, backbone frozen).
TINY_MODEL = ["model.vision=tiny", "model.vision_pretrained=false", "model.vision_frozen=true", "model.text=tiny",
              "model.dim=16", "model.num_heads=2", "model.fpn_dims=[16,16,8]", "model.mask_dim=8", "model.dyn_hidden=8"]
SMOKE_FOLDS = ["drift-chicane", "car-roundabout"]  # the two shortest sequences


class FirstFrames(FrameSource):
    """The first `n` frames of another frame source (smoke runs)."""

    def __init__(self, source: FrameSource, n: int):
        self.source, self.names = source, list(source.names[:n])

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int):
        return self.source.read(index)


def first_frames(rec: VideoRecord, n: int) -> VideoRecord:
    """The record cut to its first `n` frames (frames and per-frame targets)."""
    if n >= len(rec.video):
        return rec
    tracks = {k: ObjectTrack(t.obj_id, t.targets[:n], t.category) for k, t in rec.tracks.items()}
    return replace(rec, video=replace(rec.video, source=FirstFrames(rec.video.source, n)), tracks=tracks)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="training config overrides key=value (e.g. model.mask_dim=16)")
    ap.add_argument("--config", default="simrvos_synth", help="packaged training config each fold starts from "
                    "(simrvos_synth; objects_synth trains the object-centric model in its two phases, the "
                    "referrer's steps from method.params.refer_steps)")
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps per fold (phase 1 for objects_synth)")
    ap.add_argument("--size", type=int, nargs=2, default=(240, 427), metavar=("H", "W"), help="training size")
    ap.add_argument("--eval-size", type=int, default=240, help="shorter side the held-out video is segmented at")
    ap.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (decayed x0.1 at 80%% of the steps)")
    ap.add_argument("--batch", type=int, default=4, help="clips per step")
    ap.add_argument("--num-frames", type=int, default=5, help="frames per clip (T)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", nargs="+", default=None, metavar="SEQ", help="held-out sequences (default: all 6)")
    ap.add_argument("--max-frames", type=int, default=0, help="use only the first N frames of each video (0 = all)")
    ap.add_argument("--with-synth", type=Path, default=None, metavar="PATH",
                    help="add this synthetic benchmark's train split to every fold's training records")
    ap.add_argument("--synth-videos", type=int, default=24, help="synthetic train videos used with --with-synth")
    ap.add_argument("--data", type=Path, default=DAVIS_SAMPLE, help="the DAVIS sample folder")
    ap.add_argument("--out", type=Path, default=None, help="keep the feature cache and per-fold logs here")
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny model and size, 2 folds, 3 steps, 6 frames")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.size, args.eval_size, args.batch, args.num_frames = 3, (32, 56), 32, 2, 2
        args.folds, args.max_frames, args.synth_videos = args.folds or SMOKE_FOLDS, args.max_frames or 6, 2
        args.overrides = TINY_MODEL + list(args.overrides)
    return args


def train_config(args):
    decay = [int(0.8 * args.steps)] if args.steps >= 5 else []
    return load_config(args.config, [
        f"data.root={args.data}", f"data.clip.num_frames={args.num_frames}", "data.clip.sampling=random",
        f"data.clip.size=[{args.size[0]},{args.size[1]}]", f"optim.lr={args.lr}", f"optim.decay_steps={decay}",
        f"loop.steps={args.steps}", f"loop.batch_size={args.batch}", f"loop.seed={args.seed}", "loop.device=cpu",
        "loop.feature_cache=memory", "loop.checkpoint_every=0", "loop.eval_every=0",
        f"loop.log_every={max(1, args.steps // 30)}", "loop.progress=false", f"loop.plot={not args.smoke}",
        *args.overrides])


def run_fold(cfg, args, held: VideoRecord, train: list[VideoRecord], cache, out: Path) -> tuple:
    """Train a fresh model on `train` (features from `cache`), segment `held`: one table row."""
    t0 = time.perf_counter()
    if cfg.method.name == "objects":  # two phases (methods/objects.py); the whole model is OUT/checkpoints/last.pt
        from rvos.methods.objects import train_objects
        from rvos.train.checkpoint import checkpoint_path, load_model_from_checkpoint

        setup_s = 0.0
        last = train_objects(cfg, out / held.video_id, records=train, features=cache)
        model = load_model_from_checkpoint(checkpoint_path(out / held.video_id))[0]
    else:
        trainer = Trainer(cfg, out / held.video_id, records=train, features=cache, hooks=[LogHook()])
        setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        last = trainer.fit()
        model = trainer.model
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = evaluate_model(model, [held], "all-frames", size=args.eval_size).summary
    eval_s = time.perf_counter() - t0
    print(f"fold {held.video_id}: J&F {s['J&F']:.3f} (J {s['J']:.3f}, F {s['F']:.3f}), final loss "
          f"{last.get('loss', float('nan')):.4f}, setup {setup_s:.1f} s, train {train_s:.1f} s "
          f"({train_s / max(args.steps, 1):.2f} s/step), eval {eval_s:.1f} s", flush=True)
    return held.video_id, held.expressions[0].text, s["J"], s["F"], s["J&F"], train_s, eval_s


def print_report(args, cfg, rows: list[tuple], n_synth: int, cache_s: float, total_s: float) -> None:
    notes = f" + {n_synth} synthetic videos ({args.with_synth})" if n_synth else ""
    notes += f"; only the first {args.max_frames} frames of every video" if args.max_frames else ""
    head = f", head {cfg.model.head}" + (f" (referrer: {cfg.method.params.get('refer_steps')} steps)"
                                         if cfg.method.name == "objects" else "")
    print(f"\nDAVIS sample leave-one-out, {len(rows)} folds, Ref-DAVIS all-frames protocol; {args.config}: "
          f"{cfg.model.vision} + {cfg.model.text}{head}, {args.steps} steps x {args.batch} clips x {args.num_frames} random frames at "
          f"{args.size[0]}x{args.size[1]}, lr {args.lr}, seed {args.seed}{notes}; held-out video segmented at "
          f"shorter side {args.eval_size}; cache {cache_s:.0f} s, total {total_s:.0f} s")
    table = [(h, f'"{t}"', f"{j:.3f}", f"{f:.3f}", f"{jf:.3f}", f"{ts:.0f}", f"{es:.0f}") for h, t, j, f, jf, ts, es in rows]
    mean = [statistics.mean(r[k] for r in rows) for k in range(2, 7)]
    table.append(("**mean**", "", *(f"**{v:.3f}**" for v in mean[:3]), f"{mean[3]:.0f}", f"{mean[4]:.0f}"))
    print(markdown_table(["held-out sequence", "sentence", "J", "F", "J&F", "train s", "eval s"], table))


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    print(command_line())
    print(machine_line())
    cfg = train_config(args)
    records = open_dataset(args.data, layout="davis")
    if args.max_frames:
        records = [first_frames(r, args.max_frames) for r in records]
    by_id = {r.video_id: r for r in records}
    folds = args.folds or sorted(by_id)
    unknown = sorted(set(folds) - set(by_id))
    if unknown or len(records) < 2:
        print(f"unknown sequences {unknown} or fewer than 2 videos; the data has {sorted(by_id)}", file=sys.stderr)
        return 2
    synth: list[VideoRecord] = []
    if args.with_synth is not None:
        synth = open_dataset(args.with_synth, split="train")[:args.synth_videos]
        if args.max_frames:
            synth = [first_frames(r, args.max_frames) for r in synth]
    synth_items = sum(len(r.expressions) for r in synth)
    out = args.out or Path(tempfile.mkdtemp(prefix="davis_cv-"))
    try:
        # One cache for every fold: all DAVIS frames (and the synthetic ones) at the training size, plain and flipped.
        seed_all(cfg.loop.seed)
        encoder = build_model(cfg.model)
        t0 = time.perf_counter()
        cache = build_feature_cache(encoder, records + synth, tuple(cfg.data.clip.size), "cpu",
                                    folder=out / "features" if args.out else None)
        cache_s = time.perf_counter() - t0
        del encoder
        where = f"on disk in {out / 'features'}, reused by the next run" if args.out else "in memory"
        print(f"feature cache: {len(cache)} frames (plain + flipped) at {cfg.data.clip.size[0]}x{cfg.data.clip.size[1]} "
              f"in {cache_s:.1f} s ({len(cache) / max(cache_s, 1e-9):.1f} frames/s), {where}")
        rows = []
        for held in folds:
            davis_train = [r for r in records if r.video_id != held]
            repeat = max(args.batch, -(-synth_items // len(davis_train)))  # see the module docstring
            rows.append(run_fold(cfg, args, by_id[held], davis_train * repeat + synth, cache, out))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print_report(args, cfg, rows, len(synth), cache_s, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
