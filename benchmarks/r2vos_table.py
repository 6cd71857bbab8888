"""R2-VOS Table 2 / Table 3-4 in miniature: SimRVOS vs SimRVOS+R2, the multi-query head without and with R2, and
the R2 ablations (cycle relations distance / angle / both / none, no consensus head), scored with the r2 protocol.

Synthetic benchmark (default): every run trains on the train split and is scored on the test split's R2 pairing
(`rvos.data.negatives.r2_records`, fixed --r2-seed: each expression on its own video and on one unrelated video):
J, F (positives), R = 1 - negative area / positive area (R2-VOS section 5.1) and J&F&R = (J + F + R) / 3; and a
second R over the synthetic set's own absent-object sentences ("R absent"). Both come from one prediction pass.
- SimRVOS rows are the paper's baselines: positives only (no sampled negatives, clip.negatives=false), no presence
  head, so their R comes from what their masks cover on the negatives.
- R2 rows: `r2vos_synth.yaml` (sampled negatives ratio 1, consensus-gated inference); "no consensus" trains no
  presence head and is evaluated ungated.
The frozen backbone encodes every train frame (and its flip) once into one in-memory feature cache shared by all
runs (each run's model gets the cache encoder's backbone weights). Results go to --out (JSON) after every run; a
rerun with the same settings skips the runs already there.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/r2vos_table.py [--data runs/demo/data] [--steps 1600]
        [--seeds 0 1] [--rows simrvos simrvos+r2] [--out runs/r2vos_table.json] [key=value overrides ...]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/r2vos_table.py --smoke          # seconds: tiny data and model
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/r2vos_table.py --davis [--steps 200]   # DAVIS-sample CV, r2
With --davis: leave-one-sequence-out over the DAVIS sample (as davis_crossval.py); each fold scores the held-out
video's sentence on its video and on its R2 partner video, and the training sentence(s) paired onto the held-out
video (r2 pairing of all 6 videos, with a hand-given object class per sequence so that a car sentence is never a
negative of the other car video). R over all folds pools the areas."""
from __future__ import annotations

import argparse
import json
import math

import torch
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
from common import DAVIS_SAMPLE, command_line, machine_line, markdown_table
from rvos.data.negatives import sample_negatives, with_negatives
from rvos.data.readers import open_dataset
from rvos.evaluate.command import r2_eval_records
from rvos.infer.command import gate_for_config
from rvos.infer.model_eval import evaluate_model_views
from rvos.infer.predictor import Predictor
from rvos.models import build_model
from rvos.train.checkpoint import atomic_write_bytes
from rvos.train.config import load_config
from rvos.train.feature_cache import build_feature_cache
from rvos.train.hooks import LogHook
from rvos.train.loop import Trainer, seed_all

SIMRVOS = ["method.name=simrvos", "method.params={upsample_logits: false}", "model.r2=false",
           "data.negative_ratio=0", "data.clip.negatives=false"]
ROWS = {  # id -> (label, overrides on r2vos_synth)
    "simrvos": ("SimRVOS", SIMRVOS),
    "simrvos+r2": ("SimRVOS + R2", []),
    "multi": ("multi-query (5)", SIMRVOS + ["model.head=multi"]),
    "multi+r2": ("multi-query (5) + R2", ["model.head=multi"]),
    "cycle-none": ("R2, cycle: none", ["method.params.cycle=none"]),
    "cycle-distance": ("R2, cycle: distance", ["method.params.cycle=distance"]),
    "cycle-angle": ("R2, cycle: angle", ["method.params.cycle=angle"]),
    "no-consensus": ("R2 without consensus head (ungated)", ["method.params.consensus=false"]),
}
TABLE2 = ["simrvos", "simrvos+r2", "multi", "multi+r2"]
ABLATION = ["cycle-none", "cycle-distance", "cycle-angle", "simrvos+r2", "no-consensus"]
DAVIS_DEFAULT_ROWS = ["simrvos", "simrvos+r2"]
# The DAVIS sample's readers know no object classes; the r2 pairing needs them to keep related pairs apart.
DAVIS_CLASSES = {"breakdance": "person", "camel": "camel", "car-roundabout": "car", "cows": "cow",
                 "drift-chicane": "car", "goat": "goat"}
TINY_MODEL = ["model.vision=tiny", "model.vision_pretrained=false", "model.vision_frozen=true", "model.text=tiny",
              "model.dim=16", "model.num_heads=2", "model.fpn_dims=[16,16,8]", "model.mask_dim=8", "model.dyn_hidden=8"]
COLUMNS = ("J", "F", "J&F", "R", "J&F&R")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="training config overrides key=value, applied to every row")
    ap.add_argument("--data", type=Path, default=Path("runs/demo/data"),
                    help="synthetic benchmark root (generated with the default SynthConfig when missing)")
    ap.add_argument("--steps", type=int, default=1600, help="optimizer steps per run")
    ap.add_argument("--batch", type=int, default=8, help="clips per step")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (rows are averaged)")
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=None, help="rows to run (default: all)")
    ap.add_argument("--r2-seed", type=int, default=0, help="seed of the R2 evaluation pairing")
    ap.add_argument("--out", type=Path, default=None, help="JSON of every finished run (resumable)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="keep the synthetic feature cache on disk here (reused by the next run with the same size)")
    ap.add_argument("--davis", action="store_true", help="DAVIS-sample leave-one-out with the r2 protocol instead")
    ap.add_argument("--davis-data", type=Path, default=DAVIS_SAMPLE)
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny synthetic set (or 2 DAVIS folds), tiny model")
    args = ap.parse_args(argv)
    args.size, args.num_frames, args.max_frames, args.folds = None, 5, 0, None
    if args.smoke:
        args.steps, args.batch, args.size, args.num_frames = 3, 4, (64, 96), 2
        args.max_frames, args.folds = 6, ["drift-chicane", "car-roundabout"]
        args.overrides = TINY_MODEL + list(args.overrides)
    if args.davis:
        args.size = args.size or (240, 427)
        args.rows = args.rows or DAVIS_DEFAULT_ROWS
    args.rows = args.rows or list(ROWS)
    return args


def row_config(args, row: str, seed: int, root: Path):
    decay = [int(0.75 * args.steps)] if args.steps >= 5 else []
    size = [f"data.clip.size=[{args.size[0]},{args.size[1]}]"] if args.size else []
    return load_config("r2vos_synth", [
        f"data.root={root}", f"data.clip.num_frames={args.num_frames}", *size, f"optim.decay_steps={decay}",
        f"loop.steps={args.steps}", f"loop.batch_size={args.batch}", f"loop.seed={seed}", "loop.device=cpu",
        "loop.checkpoint_every=0", "loop.eval_every=0", f"loop.log_every={max(1, args.steps // 30)}",
        "loop.progress=false", "loop.plot=false", *ROWS[row][1], *args.overrides])


def train_run(cfg, records, cache, encoder, out: Path):
    """A fresh model for this row and seed (backbone = the cache encoder's), trained on `records`."""
    seed_all(cfg.loop.seed)
    model = build_model(cfg.model)
    model.vision.load_state_dict(encoder.vision.state_dict())
    t0 = time.perf_counter()
    trainer = Trainer(cfg, out, records=records, model=model, features=cache, hooks=[LogHook()])
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    last = trainer.fit()
    return trainer.model, last, setup_s, time.perf_counter() - t0


def score(model, cfg, records, r2_seed: int, negatives: str = "both", size=None) -> dict:
    """r2 on the pairing's negatives and, when the data has its own absent sentences, R over those."""
    recs = r2_eval_records(records, negatives, r2_seed)
    own_neg = any(not e.positive and not e.exp_id.startswith("neg-") for r in recs for e in r.expressions)
    views = {"r2": ("r2", lambda r, e: e.positive or e.exp_id.startswith("neg-"))}
    if own_neg:
        views["absent"] = ("r2", lambda r, e: not e.exp_id.startswith("neg-"))
    res = evaluate_model_views(model, recs, views, gate=gate_for_config(cfg), size=size, workers=1)
    s = res["r2"].summary
    out = {k: s[k] for k in ("J", "F", "J&F", "R", "J&F&R", "neg_area", "pos_area", "positives", "negatives")}
    if "absent" in res:
        out["R_absent"] = res["absent"].summary["R"]
    if getattr(model, "r2", None) is not None:
        out.update(presence_separation(model, recs))
    return out


@torch.inference_mode()
def presence_separation(model, records, frames: int = 8) -> dict:
    """How well the presence logit A separates the positive from the negative pairs (on each video's first
    `frames` frames): mean sigmoid(A) of each, and the AUC (0.5 = no separation). And what the reconstruction e'
    depends on: mean cosine between the e' of one sentence on two different videos (its own and its R2 partner;
    1.0 = e' ignores the video) and between the e' of two sentences on one video; the mean response gate of the
    visual reconstructions (near 0: a closed gate)."""
    import numpy as np

    from rvos.infer.geometry import Geometry

    predictor, pos, neg, rec, gates = Predictor(model), [], [], [], []  # rec: (text, video, e')
    gate = model.r2.rec_gate if model.r2 is not None else None
    hook = None if gate is None else gate.conv.register_forward_hook(
        lambda m, i, out: gates.append(float(torch.sigmoid(out).mean())))  # mean gate over the clip's tokens
    for r in records:
        n = min(frames, len(r.video))
        geo = Geometry.create(r.video.height, r.video.width, None, predictor.pad_to)
        feats = predictor.encode(geo.to_input([r.video.frame(i) for i in range(n)]))
        for e in r.expressions:
            out = model.decode(feats, model.encode_text([e.text]), 1, n)
            p = float(out.presence.reshape(-1)[0])
            (pos if e.positive else neg).append(1.0 / (1.0 + math.exp(-p)))
            rec.append((e.text, r.video_id, torch.nn.functional.normalize(out.extras["sentence_rec"][0].float(), dim=0)))
    if hook is not None:
        hook.remove()
    a, b = np.array(pos), np.array(neg)
    auc = float((a[:, None] > b[None]).mean() + 0.5 * (a[:, None] == b[None]).mean())
    same_text = [float(x[2] @ y[2]) for i, x in enumerate(rec) for y in rec[i + 1:] if x[0] == y[0] and x[1] != y[1]]
    same_video = [float(x[2] @ y[2]) for i, x in enumerate(rec) for y in rec[i + 1:] if x[1] == y[1] and x[0] != y[0]]
    return {"presence_pos": float(a.mean()), "presence_neg": float(b.mean()), "presence_auc": auc,
            "rec_cos_same_text": float(np.mean(same_text)) if same_text else float("nan"),
            "rec_cos_same_video": float(np.mean(same_video)) if same_video else float("nan"),
            "rec_gate_mean": float(np.mean(gates)) if gates else float("nan")}


class Results:
    """{"settings": ..., "runs": {key: numbers}} in a JSON file, written after every run."""

    def __init__(self, path, settings: dict):
        self.path, self.settings, self.runs = path, settings, {}
        if path is not None and Path(path).is_file():
            data = json.loads(Path(path).read_text())
            if data.get("settings") != settings:
                raise SystemExit(f"{path} holds runs with other settings {data.get('settings')}; use another --out")
            self.runs = data["runs"]

    def add(self, key: str, value: dict) -> None:
        self.runs[key] = value
        if self.path is not None:
            atomic_write_bytes(Path(self.path), json.dumps({"settings": self.settings, "runs": self.runs}, indent=1).encode())


def fmt(values: list[float]) -> str:
    values = [v for v in values if v == v]  # NaN (R undefined) left out
    if not values:
        return "n/a"
    m = statistics.mean(values)
    return f"{m:.3f}" if len(values) < 2 else f"{m:.3f} ± {statistics.stdev(values):.3f}"


def table(results: Results, rows: list[str], seeds: list[int], extra: bool) -> str:
    header = ["method", *COLUMNS] + (["R absent"] if extra else []) + ["presence AUC", "train s/step"]
    body = []
    for row in rows:
        runs = [results.runs[f"{row}|seed{s}"] for s in seeds if f"{row}|seed{s}" in results.runs]
        if runs:
            cols = [fmt([r[c] for r in runs]) for c in COLUMNS]
            cols += [fmt([r["R_absent"] for r in runs if "R_absent" in r])] if extra else []
            cols += [fmt([r["presence_auc"] for r in runs if "presence_auc" in r])]
            body.append([ROWS[row][0], *cols, f"{statistics.mean(r['train_s'] / r['steps'] for r in runs):.3f}"])
    return markdown_table(header, body)


def synth_data(args) -> tuple[Path, Path | None]:
    from rvos.data.synth import SynthConfig, generate

    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="r2vos_table-"))
        return generate(tmp / "data", SynthConfig(seed=0, train=4, valid=0, test=3, frames=8, height=64, width=96,
                                                  workers=1)), tmp
    if not (args.data / "synth.json").is_file():
        print(f"generating the synthetic benchmark in {args.data}", flush=True)
        generate(args.data, SynthConfig(seed=0), overwrite=args.data.exists())
    return args.data, None


def run_synth(args, results: Results) -> None:
    root, tmp = synth_data(args)
    try:
        base = row_config(args, args.rows[0], args.seeds[0], root)
        train = open_dataset(root, split="train")
        test = open_dataset(root, split="test")
        seed_all(0)
        encoder = build_model(base.model)
        t0 = time.perf_counter()
        cache = build_feature_cache(encoder, train, tuple(base.data.clip.size), "cpu", args.cache_dir)
        cache_s = time.perf_counter() - t0
        print(f"feature cache: {len(cache)} frames (plain + flipped) of {len(train)} train videos at "
              f"{base.data.clip.size[0]}x{base.data.clip.size[1]} in {cache_s:.1f} s "
              f"({len(cache) / max(cache_s, 1e-9):.1f} frames/s)", flush=True)
        for seed in args.seeds:
            for row in args.rows:
                key = f"{row}|seed{seed}"
                if key in results.runs:
                    print(f"{key}: done earlier, skipped", flush=True)
                    continue
                cfg = row_config(args, row, seed, root)
                with tempfile.TemporaryDirectory(prefix="r2run-") as out:
                    model, last, setup_s, train_s = train_run(cfg, train, cache, encoder, Path(out))
                t0 = time.perf_counter()
                s = score(model, cfg, test, args.r2_seed)
                s.update(train_s=train_s, setup_s=setup_s, eval_s=time.perf_counter() - t0, steps=args.steps,
                         final_loss=last.get("loss"), cache_s=cache_s)
                results.add(key, s)
                print(f"{key}: J&F {s['J&F']:.3f} R {s['R']:.3f} J&F&R {s['J&F&R']:.3f} R absent "
                      f"{s.get('R_absent', float('nan')):.3f}; train {train_s:.1f} s ({train_s / args.steps:.3f} s/step), "
                      f"setup {setup_s:.1f} s, eval {s['eval_s']:.1f} s", flush=True)
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def run_davis(args, results: Results) -> None:
    from davis_crossval import first_frames

    records = open_dataset(args.davis_data, layout="davis")
    records = [first_frames(r, args.max_frames) if args.max_frames else r for r in records]
    records = [replace(r, tracks={k: replace(t, category=DAVIS_CLASSES.get(r.video_id)) for k, t in r.tracks.items()})
               for r in records]
    folds = args.folds or [r.video_id for r in records]
    paired = r2_eval_records(records, "pairing", args.r2_seed)  # one pairing of all 6 videos, cut per fold
    base = row_config(args, args.rows[0], args.seeds[0], args.davis_data)
    seed_all(0)
    encoder = build_model(base.model)
    t0 = time.perf_counter()
    cache = build_feature_cache(encoder, records, tuple(base.data.clip.size), "cpu")
    print(f"feature cache: {len(cache)} frames in {time.perf_counter() - t0:.1f} s", flush=True)
    for seed in args.seeds:
        for row in args.rows:
            for held in folds:
                key = f"davis:{row}|seed{seed}|{held}"
                if key in results.runs:
                    continue
                cfg = row_config(args, row, seed, args.davis_data)
                train = [r for r in records if r.video_id != held]
                if cfg.data.negative_ratio:  # sampled here (unique ids), then repeated like davis_crossval
                    train = with_negatives(train, sample_negatives(train, cfg.data.negative_ratio, cfg.data.negative_seed))
                cfg.data.negative_ratio = 0.0
                cfg.data.clip.sampling = "random"
                with tempfile.TemporaryDirectory(prefix="r2run-") as out:
                    model, last, _, train_s = train_run(cfg, train * args.batch, cache, encoder, Path(out))
                fold = [replace(r, expressions=[e for e in r.expressions if r.video_id == held
                                                or e.exp_id.startswith(f"neg-{held}-")]) for r in paired]
                fold = [r for r in fold if r.expressions]
                s = score(model, cfg, fold, args.r2_seed, negatives="dataset", size=240 if not args.smoke else 32)
                s.update(train_s=train_s, steps=args.steps)
                results.add(key, s)
                print(f"{key}: J&F {s['J&F']:.3f}, {s['positives']} positive / {s['negatives']} negative pairs, "
                      f"areas: negative {s['neg_area']}, positive {s['pos_area']}", flush=True)
    header = ["method", "J", "F", "J&F", "R (pooled areas)", "J&F&R", "train s/step"]
    body = []
    for row in args.rows:
        runs = [v for k, v in results.runs.items() if k.startswith(f"davis:{row}|")]
        if runs:
            j, f = statistics.mean(r["J"] for r in runs), statistics.mean(r["F"] for r in runs)
            pos, neg = sum(r["pos_area"] for r in runs), sum(r["neg_area"] for r in runs)
            r_ = 1 - neg / pos if pos else (1.0 if neg == 0 else float("nan"))  # as RobustnessMetric
            body.append([ROWS[row][0], f"{j:.3f}", f"{f:.3f}", f"{(j + f) / 2:.3f}", f"{r_:.3f}",
                         f"{(j + f + r_) / 3:.3f}", f"{statistics.mean(r['train_s'] / r['steps'] for r in runs):.3f}"])
    print(f"\nDAVIS sample leave-one-out, {len(folds)} folds x {len(args.seeds)} seeds, r2 protocol (--r2-seed "
          f"{args.r2_seed}), {args.steps} steps x {args.batch} clips at {args.size[0]}x{args.size[1]}")
    print(markdown_table(header, body))


def main(argv=None) -> int:
    args = parse_args(argv)
    print(command_line())
    print(machine_line())
    start = time.perf_counter()
    settings = {"davis": args.davis, "steps": args.steps, "batch": args.batch, "size": args.size,
                "r2_seed": args.r2_seed, "overrides": args.overrides, "smoke": args.smoke,
                "data": str(args.davis_data if args.davis else args.data)}
    results = Results(args.out, settings)
    if args.davis:
        run_davis(args, results)
        return 0
    run_synth(args, results)
    cfg = row_config(args, "simrvos+r2", args.seeds[0], args.data)
    extra = any("R_absent" in r for r in results.runs.values())
    print(f"\nsynthetic benchmark, test split, r2 protocol on the R2 pairing (--r2-seed {args.r2_seed}); "
          f"{cfg.model.vision} + {cfg.model.text}, {args.steps} steps x {args.batch} clips x {args.num_frames} frames"
          f" at {cfg.data.clip.size[0]}x{cfg.data.clip.size[1]}, seeds {args.seeds}; total {time.perf_counter() - start:.0f} s")
    print("\nTable 2 shape (R absent: R over the synthetic set's own absent-object sentences)")
    print(table(results, [r for r in TABLE2 if r in args.rows], args.seeds, extra))
    print("\nAblations of SimRVOS + R2 (Table 3-4 shape)")
    print(table(results, [r for r in ABLATION if r in args.rows], args.seeds, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
